"""What the report_nlp pipeline components share."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from spacy.tokens import Doc, Span
from spacy.tokens.underscore import Underscore
from spacy.util import minibatch


class BatchComponent:
    """A component whose ``pipe`` runs it over a whole batch before handing any Doc on, as spaCy's
    trainable pipes do: ``nlp.pipe`` then runs stage by stage per batch instead of Doc by Doc through
    every stage, so each stage's code and tables stay warm (about 4% of ``analyze_many`` on short
    reports). ``__call__`` is the component itself."""

    def __call__(self, doc: Doc) -> Doc:  # pragma: no cover - each component defines it
        raise NotImplementedError

    def pipe(self, stream: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size):
            yield from [self(doc) for doc in batch]


_MISSING = object()


def _unknown(cls, name: str) -> AttributeError:
    return AttributeError(f"no {cls.__name__} extension {name!r}")  # as through ``_``


def _write(cls, obj, doc: Doc, key: tuple, name: str, value: Any) -> None:
    extension = cls.get_extension(name)
    if extension is None:
        raise _unknown(cls, name)
    _, method, getter, setter = extension
    if method is None and getter is None and setter is None:
        doc.user_data[key] = value
    else:
        setattr(obj._, name, value)


# Extension values read and written in ``doc.user_data`` under the keys spaCy's Underscore uses, without
# building an Underscore object per access (three per target, a dozen per Doc); tested against ``_``.
# Each read is written out in its accessor (no shared helper: they run ~40 times per report). A read
# looks at the getter and method only, as Underscore's own does.
_MUTABLE = Underscore.mutable_types


def get_span_value(span: Span, name: str, missing: Any = _MISSING) -> Any:
    """``getattr(span._, name)``; ``missing``, when given, for an extension nobody registered."""
    extension = Span.get_extension(name)
    if extension is None:
        if missing is _MISSING:
            raise _unknown(Span, name)
        return missing
    default, method, getter, _ = extension
    if method is None and getter is None and not isinstance(default, _MUTABLE):
        return span.doc.user_data.get(("._.", name, span.start_char, span.end_char), default)
    return getattr(span._, name)  # a mutable default is stored on first read: via ``_``


def set_span_value(span: Span, name: str, value: Any) -> None:
    """``setattr(span._, name, value)``."""
    _write(Span, span, span.doc, ("._.", name, span.start_char, span.end_char), name, value)


def get_doc_value(doc: Doc, name: str) -> Any:
    """``getattr(doc._, name)``."""
    extension = Doc.get_extension(name)
    if extension is None:
        raise _unknown(Doc, name)
    default, method, getter, _ = extension
    if method is None and getter is None and not isinstance(default, _MUTABLE):
        return doc.user_data.get(("._.", name, None, None), default)
    return getattr(doc._, name)


def set_doc_value(doc: Doc, name: str, value: Any) -> None:
    """``setattr(doc._, name, value)``."""
    _write(Doc, doc, doc, ("._.", name, None, None), name, value)
