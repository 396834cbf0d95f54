"""Shared fixtures: the pipeline is built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def nlp():
    import report_nlp

    return report_nlp.load()


@pytest.fixture(scope="session")
def analyze(nlp):
    import report_nlp

    return report_nlp.analyze


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
