"""Triple loaders: the three formats, gzip, duplicates and errors that name file and line."""

from __future__ import annotations

import gzip

import pytest

from kgqa.errors import InputError, TripleFormatError
from kgqa.graph.loaders import detect_format, read_columns, read_triples


def column_triples(path, fmt=None):
    """read_columns' triples as tuples (the reader the embedded store loads with)."""
    return list(zip(*(column.to_pylist() for column in read_columns(path, fmt))))


def test_pipe_format_and_duplicates(tiny_kb):
    triples = read_triples(tiny_kb)
    assert len(triples) == 13
    assert triples[0] == ("Kismet", "directed_by", "William Dieterle")


def test_tsv_and_gzip(tmp_path):
    file = tmp_path / "kb.tsv.gz"
    with gzip.open(file, "wt") as handle:
        handle.write("Paris, Texas\tdirected_by\tWim Wenders\nParis, Texas\tdirected_by\tWim Wenders\n")
    assert detect_format(file) == "tsv"
    assert read_triples(file) == [("Paris, Texas", "directed_by", "Wim Wenders")]


def test_ntriples(tmp_path):
    file = tmp_path / "kb.nt"
    file.write_text(
        "# a comment\n"
        "<http://ex.org/Kismet_(1944)> <http://ex.org/ont/directedBy> <http://ex.org/William_Dieterle> .\n"
        '<http://ex.org/Kismet_(1944)> <http://ex.org/ont#releaseYear> "1944"^^<http://www.w3.org/2001/XMLSchema#gYear> .\n'
        '<http://ex.org/Kismet_(1944)> <http://ex.org/ont/title> "Kismet"@en .\n')
    assert read_triples(file) == [("Kismet (1944)", "directedBy", "William Dieterle"),
                                  ("Kismet (1944)", "releaseYear", "1944"),
                                  ("Kismet (1944)", "title", "Kismet")]


@pytest.mark.parametrize("content, line, reason", [
    ("A|r|B\nA|r\n", 2, "expected subject|relation|object"),
    ("A|r|B\nA|r|B|C\n", 2, "expected subject|relation|object"),
    ("A||B\n", 1, "empty subject, relation or object"),
    ("A|two words|B\n", 1, "must be one word"),
    ("A|r_inv|B\n", 1, "may not end in '_inv'"),
])
@pytest.mark.parametrize("reader", [read_triples, column_triples])
def test_malformed_lines_name_file_and_line(tmp_path, content, line, reason, reader):
    file = tmp_path / "bad.txt"
    file.write_text("\n  \n" + content)  # blank and whitespace-only lines are skipped, and counted
    line += 2
    with pytest.raises(TripleFormatError) as info:
        reader(file)
    assert info.value.line_no == line
    assert str(file) in str(info.value) and f"line {line}" in str(info.value) and reason in str(info.value)


def test_malformed_ntriples(tmp_path):
    file = tmp_path / "bad.nt"
    file.write_text("<a> <b> <c> .\n<a> <b> .\n")
    with pytest.raises(TripleFormatError, match="line 2"):
        read_triples(file)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_triples(tmp_path / "nope.txt")


def test_columns_agree_with_the_line_reader(tiny_kb, tmp_path):
    assert list(dict.fromkeys(column_triples(tiny_kb))) == read_triples(tiny_kb)
    file = tmp_path / "kb.tsv.gz"
    with gzip.open(file, "wt") as handle:
        handle.write("Paris, Texas\tdirected_by\tWim Wenders\n  a b \t r \t c|d \n")
    assert column_triples(file) == [("Paris, Texas", "directed_by", "Wim Wenders"), ("a b", "r", "c|d")]


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    file = tmp_path / "bom.txt"
    file.write_bytes("\ufeffKismet|directed_by|William Dieterle\n".encode("utf-8"))
    assert column_triples(file) == [("Kismet", "directed_by", "William Dieterle")]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"A|r|B\nCaf\xe9|r|B\n"), "line 2: not UTF-8"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00garbage"), "not a readable gzip file"),
])
def test_unreadable_files_are_one_clear_error(tmp_path, make, message):
    file = tmp_path / "kb.txt.gz" if "gzip" in message else tmp_path / "kb.txt"
    make(file)
    with pytest.raises(InputError, match=message):
        read_columns(file)
