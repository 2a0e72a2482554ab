"""Triple loaders: `s|r|o` (MetaQA), TSV and N-Triples, plain or gzipped.

`read_columns` gives a file's triples as three Arrow string columns: pipe and TSV files are parsed by
Arrow's CSV reader (multi-threaded C++, millions of triples a second), N-Triples line by line by
`kgqa.graph.ntriples` (the W3C grammar).
`iter_triples` yields (subject, relation, object) strings. Both raise `TripleFormatError` naming the file
and line of the first malformed line; duplicates are left to the graph builder.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from kgqa.errors import InputError, TripleFormatError
from kgqa.graph.ntriples import NTriplesError, parse_line

FORMATS = ("pipe", "tsv", "ntriples")
_EXPECTED = {"pipe": "subject|relation|object", "tsv": "subject<TAB>relation<TAB>object"}


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


_SPLITTERS = {"pipe": _split_pipe, "tsv": _split_tab, "ntriples": parse_line}


def iter_triples(path: Path, fmt: str | None = None) -> Iterator[tuple[str, str, str]]:
    """Yield the triples of a file in order, raising on the first malformed line."""
    fmt = fmt or detect_format(path)
    if fmt not in _SPLITTERS:
        raise InputError(f"unknown triple format {fmt!r}; use one of {', '.join(FORMATS)}")
    split = _SPLITTERS[fmt]
    relations: set[str] = set()  # relation names already checked
    with open_text(path) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if line_no == 1:
                    line = line.lstrip("\ufeff")
                if fmt == "ntriples":
                    try:
                        parts = parse_line(line)
                    except NTriplesError as exc:
                        raise TripleFormatError(str(path), line_no, str(exc), line) from None
                    if parts is None:
                        continue
                else:
                    if not line.strip():
                        continue
                    parts = [part.strip() for part in split(line)]
                    if len(parts) != 3:
                        raise TripleFormatError(str(path), line_no, f"expected {_EXPECTED[fmt]}", line)
                if not all(parts):
                    raise TripleFormatError(str(path), line_no, "empty subject, relation or object", line)
                if parts[1] not in relations:
                    reason = relation_problem(parts[1])
                    if reason:
                        raise TripleFormatError(str(path), line_no, reason, line)
                    relations.add(parts[1])
                yield tuple(parts)
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except (OSError, EOFError) as exc:  # a gzip file that is not one, or is cut short
            raise _unreadable(path, exc) from None


def read_triples(path: Path, fmt: str | None = None) -> list[tuple[str, str, str]]:
    """All distinct triples of a file, in first-seen order."""
    return list(dict.fromkeys(iter_triples(path, fmt)))


def read_columns(path: Path, fmt: str | None = None):
    """The file's triples as (subjects, relations, objects): Arrow string arrays, whitespace trimmed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt = fmt or detect_format(path)
    if fmt not in _SPLITTERS:
        raise InputError(f"unknown triple format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a triples file")
    if fmt == "ntriples":
        subjects, relations, objects = [], [], []  # three lists, not a list of tuples: less for the GC to walk
        for s, r, o in iter_triples(path, fmt):
            subjects.append(s)
            relations.append(r)
            objects.append(o)
        return tuple(pa.array(column, pa.string()) for column in (subjects, relations, objects))
    columns = _read_delimited(path, fmt)
    columns = [pc.utf8_trim_whitespace(c) for c in columns]
    for column in columns:
        empty = pc.equal(pc.utf8_length(column), 0)
        if pc.any(empty).as_py():
            row = pc.index(empty, True).as_py()
            number, line = _nth_triple_line(path, row)
            raise TripleFormatError(str(path), number, "empty subject, relation or object", line)
    for relation in pc.unique(columns[1]).to_pylist():
        reason = relation_problem(relation)
        if reason:
            number, line = _nth_triple_line(path, pc.index(columns[1], relation).as_py())
            raise TripleFormatError(str(path), number, reason, line)
    return tuple(columns)


def relation_problem(relation: str) -> str | None:
    """Why a relation name can't be used, or None."""
    if not re.fullmatch(r"[\w.:-]+", relation):
        return f"relation {relation!r} must be one word"
    if relation.endswith("_inv"):
        return "relation names may not end in '_inv' (kgqa uses that suffix for walking a relation backwards)"
    return None


def _read_delimited(path: Path, fmt: str):
    """Arrow's CSV reader over a pipe or TSV file: no quoting, three columns, blank lines skipped."""
    import pyarrow as pa
    import pyarrow.csv as csv

    bad: list[str] = []

    def invalid_row(row) -> str:
        if not row.text.strip():
            return "skip"
        bad.append(row.text)
        return "error"

    names = ["s", "r", "o"]
    try:
        table = csv.read_csv(
            path, read_options=csv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=csv.ParseOptions(delimiter="|" if fmt == "pipe" else "\t", quote_char=False,
                                           escape_char=False, invalid_row_handler=invalid_row),
            convert_options=csv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[],
                                               strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        if bad:
            number = _line_number_of(path, bad[0])
            raise TripleFormatError(str(path), number, f"expected {_EXPECTED[fmt]}", bad[0]) from None
        raise _unreadable(path, exc) from None
    return [table.column(n).combine_chunks() for n in names]


def _unreadable(path: Path, exc: Exception) -> InputError:
    """One sentence for a file Arrow could not read: not UTF-8 (with the line), not gzip, or else."""
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text:
        return _not_utf8(path)
    if path.suffix == ".gz":
        return InputError(f"{path}: not a readable gzip file ({text.splitlines()[0] if text else exc})")
    return InputError(f"{path}: cannot be read as triples ({text.splitlines()[0] if text else exc})")


def _not_utf8(path: Path) -> InputError:
    """One sentence naming the first line that is not UTF-8."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return InputError(f"{path}, line {number}: not UTF-8 text (save the file as UTF-8)")
    return InputError(f"{path}: not UTF-8 text (save the file as UTF-8)")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _line_number_of(path: Path, text: str) -> int:
    """The 1-based number of the first line whose text is `text` (for error messages only)."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff") == text:
                return number
    return 0


def _nth_triple_line(path: Path, row: int) -> tuple[int, str]:
    """(line number, text) of the row-th non-blank line (for error messages only)."""
    seen = -1
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.strip():
                seen += 1
                if seen == row:
                    return number, line
    return 0, ""
