"""The clinician web page and JSON API (FastAPI + Jinja2): paste a report, see findings, concordance, recommendation.

Privacy by default: binds to 127.0.0.1 (``report-nlp serve``), stores nothing, logs no bodies, escapes
every piece of text it renders (Jinja2 autoescape) and sends a strict Content-Security-Policy.
"""
from .app import create_app

__all__ = ["create_app"]
