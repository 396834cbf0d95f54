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


def get_span_value(span: Span, name: str) -> Any:
    """``getattr(span._, name)`` for an extension that holds a plain value (registered with an immutable
    ``default``): read from ``doc.user_data`` under the key spaCy's Underscore uses, without building an
    Underscore object per access (three per target). Other extensions go through ``span._``; an
    extension that is not registered is an AttributeError, as there."""
    extension = Span.get_extension(name)
    if extension is None:
        raise AttributeError(f"no Span extension {name!r}")
    default, method, getter, _ = extension
    if method is None and getter is None and not isinstance(default, Underscore.mutable_types):
        return span.doc.user_data.get(("._.", name, span.start_char, span.end_char), default)
    return getattr(span._, name)


def set_span_value(span: Span, name: str, value: Any) -> None:
    """``setattr(span._, name, value)``, straight into ``doc.user_data`` where the extension has no setter."""
    extension = Span.get_extension(name)
    if extension is None:
        raise AttributeError(f"no Span extension {name!r}")
    _, method, getter, setter = extension
    if method is None and getter is None and setter is None:
        span.doc.user_data[("._.", name, span.start_char, span.end_char)] = value
    else:
        setattr(span._, name, value)


def get_doc_value(doc: Doc, name: str) -> Any:
    """``getattr(doc._, name)`` for a plain-valued extension, read from ``doc.user_data`` (see
    ``get_span_value``); the components read a handful of these per Doc."""
    extension = Doc.get_extension(name)
    if extension is None:
        raise AttributeError(f"no Doc extension {name!r}")
    default, method, getter, _ = extension
    if method is None and getter is None and not isinstance(default, Underscore.mutable_types):
        return doc.user_data.get(("._.", name, None, None), default)
    return getattr(doc._, name)


def set_doc_value(doc: Doc, name: str, value: Any) -> None:
    """``setattr(doc._, name, value)``, straight into ``doc.user_data`` where the extension has no setter."""
    extension = Doc.get_extension(name)
    if extension is None:
        raise AttributeError(f"no Doc extension {name!r}")
    _, method, getter, setter = extension
    if method is None and getter is None and setter is None:
        doc.user_data[("._.", name, None, None)] = value
    else:
        setattr(doc._, name, value)
