"""Triple loaders: the three formats, gzip, duplicates and errors that name file and line."""

from __future__ import annotations

import gzip

import pytest

from kgqa.errors import InputError, TripleFormatError
from kgqa.graph.loaders import detect_format, read_triples


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
def test_malformed_lines_name_file_and_line(tmp_path, content, line, reason):
    file = tmp_path / "bad.txt"
    file.write_text(content)
    with pytest.raises(TripleFormatError) as info:
        read_triples(file)
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
