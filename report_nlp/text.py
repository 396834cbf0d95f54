"""Input text hygiene that never moves a character: offsets into the cleaned text are offsets into the original.

HTML tags and entities, RTF control words, control characters and lone carriage returns are replaced
by spaces (or a newline where they meant one), one for one, so every finding's ``start``/``end``
still indexes the text the user gave us.
"""
from __future__ import annotations

import re

from .errors import InputError

MAX_CHARS = 5_000_000

_BREAK_TAGS = re.compile(r"<\s*(?:br|/p|p|/div|div|/li|li|/tr|tr|h\d|/h\d)\b[^<>]{0,200}>", re.I)
_TAGS = re.compile(r"<\s*/?\s*[A-Za-z][A-Za-z0-9:-]{0,30}(?:\s[^<>]{0,500})?>")
_ENTITIES = re.compile(r"&(?:[A-Za-z]{2,8}|#\d{1,6}|#x[0-9A-Fa-f]{1,6});")
_RTF_PAR = re.compile(r"\\(?:par|line)\b ?")
_RTF_CONTROL = re.compile(r"\\[a-z]{1,32}-?\d{0,10} ?|\\'[0-9a-f]{2}|[{}](?=\\|\s|$)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")
_LOOKS_RTF = re.compile(r"^\s*\{\\rtf", re.I)
_LOOKS_HTML = re.compile(r"<\s*/?\s*(?:html|body|p|br|div|span|b|i|table|tr|td|font|li|ul)\b", re.I)


def _blank(match: re.Match) -> str:
    return " " * (match.end() - match.start())


def _newline(match: re.Match) -> str:
    return "\n" + " " * (match.end() - match.start() - 1)


def clean_text(text: str) -> tuple[str, list[str]]:
    """Return (cleaned text of the same length, notes on what was cleaned)."""
    notes: list[str] = []
    if "\r" in text:
        text = text.replace("\r\n", " \n").replace("\r", "\n")
        notes.append("normalised line endings")
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
        notes.append("replaced control characters")
    if _LOOKS_HTML.search(text):
        text = _BREAK_TAGS.sub(_newline, text)
        text = _TAGS.sub(_blank, text)
        text = _ENTITIES.sub(_blank, text)
        notes.append("removed HTML markup")
    if _LOOKS_RTF.search(text):
        text = _RTF_PAR.sub(_newline, text)
        text = _RTF_CONTROL.sub(_blank, text)
        notes.append("removed RTF markup")
    return text, notes


def coerce_text(value: object) -> str:
    """Accept str or bytes (UTF-8); anything else is an InputError with a clear reason."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"text is not valid UTF-8 (byte {exc.start})"
            raise InputError(msg) from None
    elif value is None:
        text = ""
    else:
        msg = f"text must be str or UTF-8 bytes, not {type(value).__name__}"
        raise InputError(msg)
    if len(text) > MAX_CHARS:
        msg = f"text is {len(text):,} characters; the limit is {MAX_CHARS:,}"
        raise InputError(msg)
    try:
        text.encode("utf-8")  # a str can hold lone surrogates (a JSON "\ud800" escape decodes to one); spaCy cannot
    except UnicodeEncodeError as exc:
        msg = f"text is not valid Unicode (unpaired surrogate at character {exc.start})"
        raise InputError(msg) from None
    return text


def looks_binary(text: str) -> bool:
    """True when the text is mostly not text (NULs or replacement characters)."""
    if not text:
        return False
    sample = text[:4096]
    bad = len(_BINARY.findall(sample))
    return bad > len(sample) * 0.1
