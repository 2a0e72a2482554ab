"""Triple loaders: `s|r|o` (MetaQA), TSV and N-Triples, plain or gzipped.

Every loader yields (subject, relation, object) strings; `read_triples` collapses duplicates and
raises `TripleFormatError` naming the file and line of the first malformed line.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote

from kgqa.errors import InputError, TripleFormatError

FORMATS = ("pipe", "tsv", "ntriples")

_NT_TERM = re.compile(r'\s*(<[^>]*>|_:\S+|"(?:[^"\\]|\\.)*"(?:@[\w-]+|\^\^<[^>]*>)?)')


def detect_format(path: Path) -> str:
    """Guess the format from the file name (`.nt`, `.tsv`, anything else is `s|r|o`)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".nt"):
        return "ntriples"
    if name.endswith(".tsv"):
        return "tsv"
    return "pipe"


def open_text(path: Path) -> TextIO:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _split_pipe(line: str) -> list[str]:
    return line.split("|")


def _split_tab(line: str) -> list[str]:
    return line.split("\t")


def _iri_name(term: str) -> str:
    """`<http://x.org/Kismet_(1944)>` -> `Kismet (1944)`; literals keep their text."""
    if term.startswith("<"):
        iri = term[1:-1]
        local = re.split(r"[#/]", iri.rstrip("/#"))[-1] or iri
        return unquote(local).replace("_", " ")
    if term.startswith('"'):
        end = term.rfind('"')
        return term[1:end].encode("utf-8").decode("unicode_escape") if "\\" in term else term[1:end]
    return term


def _split_ntriples(line: str) -> list[str]:
    terms, pos = [], 0
    for _ in range(3):
        match = _NT_TERM.match(line, pos)
        if not match:
            return []
        terms.append(match.group(1))
        pos = match.end()
    if line[pos:].strip() != ".":
        return []
    subject, predicate, obj = terms
    if not predicate.startswith("<"):
        return []
    return [_iri_name(subject), _iri_name(predicate).replace(" ", "_"), _iri_name(obj)]


_SPLITTERS = {"pipe": _split_pipe, "tsv": _split_tab, "ntriples": _split_ntriples}


def iter_triples(path: Path, fmt: str | None = None) -> Iterator[tuple[str, str, str]]:
    """Yield the triples of a file in order, raising on the first malformed line."""
    fmt = fmt or detect_format(path)
    if fmt not in _SPLITTERS:
        raise InputError(f"unknown triple format {fmt!r}; use one of {', '.join(FORMATS)}")
    split = _SPLITTERS[fmt]
    with open_text(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or (fmt == "ntriples" and line.lstrip().startswith("#")):
                continue
            parts = [part.strip() for part in split(line)]
            if len(parts) != 3:
                expected = {"pipe": "subject|relation|object", "tsv": "subject<TAB>relation<TAB>object",
                            "ntriples": "<subject> <predicate> <object> ."}[fmt]
                raise TripleFormatError(str(path), line_no, f"expected {expected}", line)
            if not all(parts):
                raise TripleFormatError(str(path), line_no, "empty subject, relation or object", line)
            if not re.fullmatch(r"[\w.:-]+", parts[1]):
                raise TripleFormatError(str(path), line_no, f"relation {parts[1]!r} must be one word", line)
            if parts[1].endswith("_inv"):
                raise TripleFormatError(str(path), line_no, "relation names may not end in '_inv' "
                                        "(kgqa uses that suffix for walking a relation backwards)", line)
            yield parts[0], parts[1], parts[2]


def read_triples(path: Path, fmt: str | None = None) -> list[tuple[str, str, str]]:
    """All distinct triples of a file, in first-seen order."""
    return list(dict.fromkeys(iter_triples(path, fmt)))
