"""spaCy components of the report_nlp pipeline; importing this package registers every factory."""
from . import context, levels, sections, sentences, targets  # noqa: F401
