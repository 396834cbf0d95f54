"""Error types with stable codes: callers catch them as builtins, analysts group batch errors by code."""
from __future__ import annotations


class ReportNLPError(Exception):
    """Base class of every error this package raises on purpose."""

    code = "E000"


class RuleFileError(ReportNLPError, ValueError):
    """A file in patterns/ is missing, not JSON, or does not match its schema."""

    code = "E001"

    def __init__(self, name: str, messages: list[str]):
        self.name = name
        self.messages = messages
        lines = "\n".join(f"  - {m}" for m in messages)
        super().__init__(f"[{self.code}] rule file patterns/{name}.json is invalid:\n{lines}")


class InputError(ReportNLPError, ValueError):
    """Input that cannot be analysed (wrong type, unreadable, too large)."""

    code = "E010"

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"[{self.code}] {reason}")


class DatabaseUnavailable(ReportNLPError, RuntimeError):
    """The database went away mid-run and did not come back within the retry window; every committed
    chunk is kept, so the run can be continued with ``--resume``."""

    code = "E030"

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"[{self.code}] {reason}")
