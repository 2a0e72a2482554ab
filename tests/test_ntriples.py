"""N-Triples 1.1 parsing: escapes, terms, comments, errors that name file and line, and the cache round trip."""

from __future__ import annotations

import gzip

import pytest

import kgqa.graph.loaders as loaders
from kgqa.errors import InputError, TripleFormatError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.loaders import read_columns, read_triples
from kgqa.graph.ntriples import NTriplesError, parse_line
from kgqa.types import Step

S, P = "<http://x.org/Kismet>", "<http://x.org/ont#label>"


def column_triples(path):
    return list(zip(*(column.to_pylist() for column in read_columns(path))))


def obj(term: str) -> str:
    """The object name of `S P term .`."""
    return parse_line(f"{S} {P} {term} .")[2]


@pytest.mark.parametrize("term, name", [
    ('"Café"', "Café"),                              # raw UTF-8 stays as it is
    ('"Caf\\u00E9"', "Café"),                        # \u escape, upper- or lower-case hex
    ('"Caf\\u00e9 \\\\u00e9"', "Café \\u00e9"),      # an escaped backslash is not the start of an escape
    ('"\\U0001F600 \\U000000e9"', "\U0001F600 é"),   # \U escapes, astral and not
    ('"a\\tb\\bc\\nd\\re\\ff\\"g\\\'h\\\\i"', "a\tb\bc\nd\re\ff\"g'h\\i"),  # every ECHAR
    ('"Émile \\"Ém\\" Zola"', 'Émile "Ém" Zola'),   # raw UTF-8 next to escapes (unicode_escape broke this)
    ('"tab\there"', "tab\there"),                    # a raw tab is allowed in a literal
    ('"Kismet"@en', "Kismet"),                       # language tags and datatypes are dropped
    ('"Kismet"@en-GB-x-1a', "Kismet"),
    ('"1944"^^<http://www.w3.org/2001/XMLSchema#gYear>', "1944"),
    ('"x"^^<http://x.org/dt\\u00E9>', "x"),
    ("_:b0", "_:b0"),                                # blank nodes keep their label
    ("_:a.b-c_d", "_:a.b-c_d"),
    ("<http://x.org/William_Dieterle>", "William Dieterle"),  # IRIs: local name, `_` read as a space
    ("<http://x.org/Caf%C3%A9_(1944)>", "Café (1944)"),        # percent-decoded
    ("<http://x.org/Caf\\u00E9>", "Café"),                      # UCHAR in an IRI
    ("<http://x.org/films/>", "films"),
    ("<urn:isbn:0451450523>", "urn:isbn:0451450523"),
])
def test_terms_and_escapes(term, name):
    assert obj(term) == name


@pytest.mark.parametrize("line, triple", [
    (f"{S} {P} \"x\" .", ("Kismet", "label", "x")),
    (f"{S}{P}\"x\".", ("Kismet", "label", "x")),               # white space between terms is optional
    (f"\t {S}\t{P}  \"x\"  . \t", ("Kismet", "label", "x")),
    (f"{S} {P} \"x\" . # a comment after the triple", ("Kismet", "label", "x")),
    (f"{S} {P} \"# not a comment\" .", ("Kismet", "label", "# not a comment")),
    ("<http://x.org/a#b> <http://x.org/release_year> <http://x.org/c#d> .", ("b", "release_year", "d")),
    ("_:a <http://x.org/p> _:b.", ("_:a", "p", "_:b")),          # a label can't end in '.', so the '.' ends the triple
])
def test_lines(line, triple):
    assert parse_line(line) == triple


@pytest.mark.parametrize("line", ["", "   ", "\t", "# comment", "   # <a> <b> <c> ."])
def test_blank_and_comment_lines(line):
    assert parse_line(line) is None


@pytest.mark.parametrize("line, reason", [
    (f'{S} {P} "Caf\\u00" .', "bad escape '\\u00' in a literal"),
    (f'{S} {P} "Caf\\u00e" .', "bad escape '\\u00e' in a literal"),
    (f'{S} {P} "Caf\\U0001F6" .', "bad escape '\\U0001F6' in a literal"),
    (f'{S} {P} "bad \\x41" .', "bad escape '\\x' in a literal"),
    (f'{S} {P} "\\uD800" .', "is not a Unicode character"),
    (f'{S} {P} "\\U00110000" .', "is not a Unicode character"),
    (f'{S} {P} "never closed .', "a literal is not closed"),
    (f'{S} {P} "x"', "missing the final '.'"),
    (f'{S} {P} "x" # no dot', "missing the final '.'"),
    (f'{S} {P} "x" . "y"', "after the final '.'"),
    (f'{S} {P} <a> <b> .', "after the object"),
    (f'{S} {P} "x"@ .', "bad language tag"),
    (f'{S} {P} "x"@1en .', "bad language tag"),
    (f'{S} {P} "x"^^xsd:int .', "bad datatype"),
    (f'{S} "label" "x" .', "the predicate must be an IRI"),
    (f'{S} _:p "x" .', "the predicate must be an IRI"),
    (f'"s" {P} "x" .', "the subject must be an IRI <...> or a blank node"),
    (f'{S} {P}', "missing the object"),
    (f'<http://x.org/a b> {P} "x" .', "character ' ' is not allowed in an IRI"),
    (f'<http://x.org/a\\n> {P} "x" .', "bad escape '\\n' in an IRI"),
    (f'<http://x.org/a {P} "x" .', "character ' ' is not allowed in an IRI"),
    (f'{S} {P} <http://x.org/a', "an IRI is not closed"),
    (f'{S} {P} _:-a .', "bad blank node label"),
    ("hello world", "the subject must be"),
])
def test_malformed_lines_say_why(line, reason):
    with pytest.raises(NTriplesError) as info:
        parse_line(line)
    assert reason in str(info.value)


@pytest.mark.parametrize("reader", [read_triples, column_triples])
def test_a_file_with_comments_blank_lines_and_crlf(tmp_path, reader):
    file = tmp_path / "kb.nt"
    file.write_bytes(("# header\r\n\r\n"
                      f"{S} <http://x.org/directed_by> <http://x.org/William_Dieterle> .\r\n"
                      "   \n"
                      f"{S} {P} \"Caf\\u00E9\"@fr . # trailing\n"
                      f"{S} {P} \"Café\"@fr .").encode("utf-8"))  # no line end at the end
    triples = [("Kismet", "directed_by", "William Dieterle"), ("Kismet", "label", "Café")]
    # read_triples drops the duplicate (escaped and raw Café are one literal); read_columns leaves it to the graph
    assert reader(file) == (triples + triples[1:] if reader is column_triples else triples)


@pytest.mark.parametrize("reader", [read_triples, column_triples])
def test_truncated_escape_names_file_and_line(tmp_path, reader):
    file = tmp_path / "kb.nt"
    file.write_text(f"# one\n{S} {P} \"fine\" .\n\n{S} {P} \"Caf\\u00\" .\n", encoding="utf-8")
    with pytest.raises(TripleFormatError) as info:
        reader(file)
    assert info.value.line_no == 4
    assert f"{file}, line 4: bad escape" in str(info.value)


def test_gzipped_and_byte_order_mark(tmp_path):
    file = tmp_path / "kb.nt.gz"
    with gzip.open(file, "wb") as handle:
        handle.write(f"\ufeff{S} {P} \"Caf\\u00e9\" .\n".encode("utf-8"))
    assert column_triples(file) == [("Kismet", "label", "Café")]


def test_not_utf8_is_one_clear_error(tmp_path):
    file = tmp_path / "kb.nt"
    file.write_bytes(f"{S} {P} \"a\" .\n".encode() + b'<http://x.org/Caf\xe9> <http://x.org/p> "b" .\n')
    with pytest.raises(InputError, match="line 2: not UTF-8"):
        read_triples(file)


def test_relation_rules_still_apply(tmp_path):
    file = tmp_path / "kb.nt"
    file.write_text(f'{S} <http://x.org/two%20words> "x" .\n', encoding="utf-8")
    assert read_triples(file) == [("Kismet", "two_words", "x")]  # a space in a predicate reads as "_"
    file.write_text(f'{S} <http://x.org/directed_by_inv> "x" .\n', encoding="utf-8")
    with pytest.raises(TripleFormatError, match="line 1: relation names may not end in '_inv'"):
        read_triples(file)


def test_newline_in_a_literal_keeps_every_id_after_the_cache_round_trip(tmp_path, monkeypatch):
    file = tmp_path / "kb.nt"
    file.write_text(
        f'{S} {P} "two\\nlines" .\n'
        f'{S} {P} "CR\\r and LS \\u2028 and NEL \\u0085 and NUL \\u0000 here" .\n'
        f'{S} <http://x.org/directed_by> <http://x.org/William_Dieterle> .\n'
        f'<http://x.org/Casablanca> <http://x.org/directed_by> <http://x.org/Michael_Curtiz> .\n'
        f'<http://x.org/Casablanca> {P} "Caf\\u00E9 Am\\u00E9ricain" .\n', encoding="utf-8")
    names = ["Kismet", "Casablanca", "two\nlines", "CR\r and LS \u2028 and NEL \u0085 and NUL \u0000 here",
             "William Dieterle", "Michael Curtiz", "Café Américain"]
    built = EmbeddedGraph.from_file(file, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(loaders, "read_columns", lambda *a, **k: pytest.fail("the triples were read again"))
    opened = EmbeddedGraph.from_file(file, cache_dir=tmp_path / "cache")
    for graph in (built, opened):
        assert graph.entity_names() == names
        assert [graph.name(i) for i in range(graph.entity_count)] == names
        assert all(graph.find_entities(name)[0] == name for name in names)
        assert graph.neighbours("Casablanca", Step("directed_by", False)) == ["Michael Curtiz"]
        assert graph.neighbours("Kismet", Step("directed_by", False)) == ["William Dieterle"]
        assert graph.neighbours("Casablanca", Step("label", False)) == ["Café Américain"]
        assert sorted(graph.neighbours("Kismet", Step("label", False))) == sorted(names[2:4])
        assert graph.neighbours("two\nlines", Step("label", True)) == ["Kismet"]
        assert graph.stats()["entities"] == 7 and graph.stats()["triples"] == 5
