"""Faster ``finditer`` for patterns that open with a word boundary or a lookbehind.

Python's ``re`` skips quickly to where a match can begin only when a pattern starts with a literal or a
character set; a pattern that opens with ``\\b`` or ``(?<=...)`` (most rules in ``patterns/``) is tried
at every position of the text. When every match of a pattern P must begin with one of a known set of
characters S, the pattern ``[S](?<=(?=(P))[\\s\\S])`` matches one character past exactly the positions
where P matches, and ``re`` scans for S at C speed; group 1 is P's match. Searching it again from the
end of each match gives ``P.finditer``'s matches, in order (tested on every rule against ``finditer``).
S is read from the pattern's parse tree; where it cannot be (a pattern that may match the empty string,
a character class that is negated, a backreference), the pattern is scanned as written.

``requires_digit`` reads from the same parse tree whether every match holds a digit, so that a
caller can skip the search on fragments without one.
"""
from __future__ import annotations

import re
from typing import Optional

try:  # the parser of Python's own re module (3.11 and later)
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - older Pythons: no scan, the patterns run as written
    _c = _p = None

_ZERO_WIDTH = ("AT", "ASSERT", "ASSERT_NOT")
_CATEGORY_CLASS = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
                   "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
_EMPTY = "empty"  # the sequence consumes nothing


def _first(items) -> Optional[list]:
    """Class items one of which must open every match of the sequence ``items``; ``_EMPTY`` when the
    sequence is only zero-width assertions; None when unknown or when it can match the empty string."""
    found: list = []
    for op, av in items:
        name = str(op)
        if name in _ZERO_WIDTH:
            continue
        if name == "LITERAL":
            return found + [("LITERAL", av)]
        if name == "IN":
            if any(str(o) == "NEGATE" for o, _ in av):
                return None
            return found + [(str(o), a) for o, a in av]
        if name == "SUBPATTERN":
            inner = _first(av[-1])
            if inner is None:
                return None
            if inner == _EMPTY:
                continue
            return found + inner
        if name == "BRANCH":
            empty = 0  # alternatives that consume nothing ("(?:(?<=a)|(?<=b))"): what follows may open the match
            for alternative in av[1]:
                inner = _first(alternative)
                if inner is None:
                    return None
                if inner == _EMPTY:
                    empty += 1
                else:
                    found = found + inner
            if not empty:
                return found
            continue
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = av
            inner = _first(sub)
            if inner is None or inner == _EMPTY:
                return None
            found = found + inner
            if low > 0:
                return found
            continue  # optional: what follows may open the match instead
        return None
    return _EMPTY if not found else None


def _char_class(items: list) -> Optional[str]:
    parts = set()
    for op, av in items:
        if op == "LITERAL":
            parts.add(re.escape(chr(av)))
        elif op == "RANGE":
            parts.add(f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}")
        elif op == "CATEGORY" and str(av) in _CATEGORY_CLASS:
            parts.add(_CATEGORY_CLASS[str(av)])
        else:
            return None
    return "[" + "".join(sorted(parts)) + "]"


def leading_scan(regex: re.Pattern) -> Optional[re.Pattern]:
    """The scanning form of ``regex`` (see the module docstring), or None where it cannot be built."""
    if _p is None or not isinstance(regex.pattern, str) or re.search(r"\\[1-9]|\(\?P=", regex.pattern):
        return None
    try:
        first = _first(list(_p.parse(regex.pattern, regex.flags & ~re.UNICODE)))
        if not first or first == _EMPTY:
            return None
        cls = _char_class(first)
        return re.compile(f"{cls}(?<=(?=({regex.pattern}))[\\s\\S])", regex.flags) if cls else None
    except (re.error, TypeError, ValueError, AttributeError, RecursionError):
        return None


class LeadingScan:
    """``finditer`` spans of a compiled pattern, through its scanning form where it has one."""

    def __init__(self, regex: re.Pattern, scan: bool = True) -> None:
        self.regex = regex
        self.scan = leading_scan(regex) if scan else None

    def found_in(self, text: str) -> bool:
        """``bool(regex.search(text))``."""
        return bool((self.scan or self.regex).search(text))

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [(a, b) for a, b, _ in self.matches(text)]

    def matches(self, text: str) -> list[tuple[int, int, re.Match]]:
        """(start, end, match) of each match of ``finditer``; the match object's named groups are the
        pattern's own (its ``start()``/``end()`` are the scan's: use the two offsets)."""
        if self.scan is None:
            return [(m.start(), m.end(), m) for m in self.regex.finditer(text)]
        out = []
        search, pos, n = self.scan.search, 0, len(text)
        while pos < n:
            m = search(text, pos)
            if m is None:
                break
            a, b = m.span(1)
            out.append((a, b, m))
            pos = b  # never empty: every match consumes its first character
        return out


def requires_digit(regex: re.Pattern) -> bool:
    """True when every match of ``regex`` holds a decimal digit (``\\d``), read from its parse tree: a
    fragment without one cannot match, so callers skip the search. False where that cannot be shown."""
    if _p is None or not isinstance(regex.pattern, str):
        return False
    try:
        return _needs_digit(list(_p.parse(regex.pattern, regex.flags & ~re.UNICODE)))
    except (re.error, TypeError, ValueError, AttributeError, RecursionError):
        return False


def _is_digit_item(op, av) -> bool:
    name = str(op)
    if name == "LITERAL":
        return chr(av) in "0123456789"
    if name == "RANGE":
        return "0" <= chr(av[0]) and chr(av[1]) <= "9"
    return name == "CATEGORY" and str(av) == "CATEGORY_DIGIT"


def _needs_digit(items) -> bool:
    """Whether the sequence ``items`` consumes a digit on every path (lookarounds are not part of a match)."""
    for op, av in items:
        name = str(op)
        if name == "LITERAL" and _is_digit_item(op, av):
            return True
        if name == "IN" and av and all(_is_digit_item(o, a) for o, a in av):
            return True
        if name == "SUBPATTERN" and _needs_digit(av[-1]):
            return True
        if name == "BRANCH" and all(_needs_digit(alternative) for alternative in av[1]):
            return True
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and av[0] >= 1 and _needs_digit(av[2]):
            return True
    return False
