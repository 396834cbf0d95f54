"""The batch function on Apache Spark: ``annotate(df, id_col, text_col)`` through ``mapInPandas``.

Each executor process builds the pipeline once (``report_nlp.load()`` is cached per process) and runs
:func:`report_nlp.batch.analyze_frame` on its pandas batches, so Spark and the local runner produce
the same rows. PySpark is an optional extra: ``pip install 'report_nlp[spark]'``.
"""
from __future__ import annotations

from typing import Iterator

import pandas as pd

from .batch import ERROR_COLUMNS, FINDING_COLUMNS, RESULT_COLUMNS, analyze_frame, column_kind

TABLES = {"results": RESULT_COLUMNS, "findings": FINDING_COLUMNS, "errors": ERROR_COLUMNS}


def _struct(columns: list[str]):
    """A Spark schema of nullable columns typed by :func:`report_nlp.batch.column_kind`."""
    from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType

    spark_type = {"int": LongType(), "bool": BooleanType(), "text": StringType()}
    return StructType([StructField(c, spark_type[column_kind(c)], True) for c in columns])


def schema(table: str):
    """The explicit Spark schema of one output table."""
    return _struct(TABLES[table])


def _typed(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Column types that match the explicit schema (nullable ints and booleans, strings or None)."""
    df = df.copy()
    for c in columns:
        kind = column_kind(c)
        if kind == "int":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif kind == "bool":
            df[c] = df[c].astype("boolean")
        else:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df


ALL_COLUMNS = ["table"] + list(dict.fromkeys(RESULT_COLUMNS + FINDING_COLUMNS + ERROR_COLUMNS))


def annotate_all(df, id_col: str = "id", text_col: str = "text", exam_cols=None):
    """One pass over the reports: every output row, tagged with its ``table`` (results, findings, errors)."""

    def run_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            parts = []
            for name, frame in zip(TABLES, analyze_frame(pdf, id_col, text_col, exam_cols)):
                frame = frame.copy()
                frame["table"] = name
                parts.append(frame)
            yield _typed(pd.concat(parts, ignore_index=True).reindex(columns=ALL_COLUMNS), ALL_COLUMNS)

    return df.mapInPandas(run_batches, schema=_struct(ALL_COLUMNS))


def annotate(df, id_col: str = "id", text_col: str = "text", table: str = "findings", exam_cols=None):
    """A Spark DataFrame of reports -> the ``table`` ("findings", "results" or "errors") as a Spark DataFrame."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, not {table!r}")
    rows = annotate_all(df, id_col, text_col, exam_cols)
    return rows.where(rows["table"] == table).select(*TABLES[table])


def local_session(master: str = "local[*]", app: str = "report_nlp"):
    """A Spark session whose Python workers use this interpreter and which stays on the loopback interface."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (SparkSession.builder.master(master).appName(app)
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())


def run_spark(input_path: str, out: str, id_col: str = "id", text_col: str = "text", master: str = "local[*]") -> dict:
    """``report-nlp batch --engine spark``: read CSV/JSONL/Parquet with Spark, write the three tables as Parquet."""
    spark = local_session(master)
    try:
        lower = input_path.lower()
        if lower.endswith(".csv"):
            df = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(input_path)
        elif lower.endswith((".jsonl", ".json", ".ndjson")):
            df = spark.read.json(input_path)
        else:
            df = spark.read.parquet(input_path)
        df = df.select(id_col, text_col)
        counts = {"rows_in": df.count()}
        rows = annotate_all(df, id_col, text_col).cache()  # analysed once, split into the three tables
        for table, columns in TABLES.items():
            rows.where(rows["table"] == table).select(*columns).write.mode("overwrite").parquet(f"{out.rstrip('/')}/{table}")
            counts[table] = spark.read.parquet(f"{out.rstrip('/')}/{table}").count()
        return counts
    finally:
        spark.stop()
