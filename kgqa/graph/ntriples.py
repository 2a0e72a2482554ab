"""N-Triples 1.1 (https://www.w3.org/TR/n-triples/), one line at a time, into kgqa's (subject, relation, object) names.

The grammar's terminals are regular expressions below, joined into one pattern for a whole triple line
(one `fullmatch` per line). Loops are written "unrolled" (`a*(?:\\x a*)*`), so a malformed line fails in
linear time. Only a line that does not match is looked at again, term by term, to say what is wrong.

Terms become names the way kgqa has always named them: an IRI its local name (after the last `/` or
`#`, percent-decoded, `_` read as a space), the predicate the same with `_` kept, a blank node `_:label`,
a literal its decoded lexical form (its language tag or datatype is checked, then dropped); names are
stripped of surrounding white space, as in the other formats.

Not checked: that IRIs are absolute (kgqa keeps only their local name).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

_HEX = "[0-9A-Fa-f]"
_UCHAR = rf"u{_HEX}{{4}}|U{_HEX}{{8}}"
_IRI_CHAR = r'[^\x00-\x20<>"{}|^`\\]'
_IRI = rf"<({_IRI_CHAR}*(?:\\(?:{_UCHAR}){_IRI_CHAR}*)*)>"
_STRING_CHAR = r'[^"\\\n\r]'
_STRING = rf'"({_STRING_CHAR}*(?:\\(?:[tbnrf"\'\\]|{_UCHAR}){_STRING_CHAR}*)*)"'
_LANG = r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*"
_PN_CHARS_BASE = ("A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
                  "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff")
_PN_CHARS_U = _PN_CHARS_BASE + "_:"
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00b7\u0300-\u036f\u203f-\u2040"
_BNODE = rf"_:([{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?)"
_LITERAL = rf"{_STRING}(?:@({_LANG})|\^\^{_IRI})?"
_WS = "[ \t]*"
_END = rf"{_WS}\.{_WS}(?:#.*)?"

# groups: 1 subject IRI, 2 subject blank node, 3 predicate IRI, 4 object IRI, 5 object blank node,
# 6 object literal, 7 its language tag, 8 its datatype IRI
_TRIPLE = re.compile(rf"{_WS}(?:{_IRI}|{_BNODE}){_WS}{_IRI}{_WS}(?:{_IRI}|{_BNODE}|{_LITERAL}){_END}")
_BLANK = re.compile(rf"{_WS}(?:#.*)?")
_ESCAPE = re.compile(rf'\\(?:([tbnrf"\'\\])|u({_HEX}{{4}})|U({_HEX}{{8}}))')
_ECHARS = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_TERMS = {"iri": re.compile(_IRI), "bnode": re.compile(_BNODE), "literal": re.compile(_LITERAL)}
_RELATIONS: dict[str, str] = {}  # predicate IRI -> relation name, for the few predicates of a file
_WANTED = {"iri": "an IRI <...>", "bnode": "a blank node _:label", "literal": 'a literal "..."'}
_WS_RUN = re.compile(_WS)
_SHOWN_ESCAPE = re.compile(rf"\\(?:u{_HEX}{{0,4}}|U{_HEX}{{0,8}}|.?)")
_INSIDE = {"<": (re.compile(_IRI_CHAR), re.compile(rf"\\(?:{_UCHAR})"), ">", "an IRI"),
           '"': (re.compile(_STRING_CHAR), re.compile(rf"\\(?:[tbnrf\"'\\]|{_UCHAR})"), '"', "a literal")}


class NTriplesError(ValueError):
    """A line that is not an N-Triples triple, a comment or blank; the message says why."""


def parse_line(line: str) -> tuple[str, str, str] | None:
    """The (subject, relation, object) names of one line (no line end), or None for a blank or comment line."""
    match = _TRIPLE.fullmatch(line)
    if match is None:
        if _BLANK.fullmatch(line):
            return None
        raise NTriplesError(_problem(line))
    s_iri, s_bnode, p_iri, o_iri, o_bnode, literal = match.group(1, 2, 3, 4, 5, 6)
    subject = iri_name(s_iri) if s_iri is not None else "_:" + s_bnode
    relation = _RELATIONS.get(p_iri)
    if relation is None:
        if len(_RELATIONS) >= 10_000:
            _RELATIONS.clear()
        relation = _RELATIONS[p_iri] = iri_name(p_iri).replace(" ", "_")
    if o_iri is not None:
        obj = iri_name(o_iri)
    elif o_bnode is not None:
        obj = "_:" + o_bnode
    else:
        obj = (unescape(literal) if "\\" in literal else literal).strip()
    return subject, relation, obj


def iri_name(iri: str) -> str:
    """`http://x.org/Kismet_(1944)` (the text between `<` and `>`) -> `Kismet (1944)`."""
    if "\\" in iri:
        iri = unescape(iri)
    trimmed = iri.rstrip("/#")
    local = trimmed[max(trimmed.rfind("/"), trimmed.rfind("#")) + 1:] or iri
    if "%" in local:  # as urllib's unquote, at half its cost
        local = unquote_to_bytes(local).decode("utf-8", "replace")
    return local.replace("_", " ").strip()


def unescape(text: str) -> str:
    """Decode the ECHAR (`\\n`, `\\"`, ...) and UCHAR (`\\u00E9`, `\\U0001F600`) escapes of a matched term."""
    return _ESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match) -> str:
    echar, short, long = match.groups()
    if echar is not None:
        return _ECHARS[echar]
    code = int(short or long, 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        raise NTriplesError(f"escape '{match.group()}' is not a Unicode character")
    return chr(code)


def _problem(line: str) -> str:
    """Why a line that is neither a triple, a comment nor blank fails: the first term or token that is wrong."""
    pos = 0
    for role, kinds in (("subject", ("iri", "bnode")), ("predicate", ("iri",)),
                        ("object", ("iri", "bnode", "literal"))):
        pos = _WS_RUN.match(line, pos).end()
        match = next((m for m in (_TERMS[k].match(line, pos) for k in kinds) if m), None)
        if match is None:
            return _term_problem(line[pos:], role, kinds)
        pos = match.end()
    rest = line[pos:]
    if rest[:1] == "@":
        return f"bad language tag {rest.split()[0][:20]!r} (like @en or @en-GB)"
    if rest[:2] == "^^":
        return f"bad datatype {rest.split()[0][:40]!r} (^^ must be followed by an IRI <...>)"
    rest = rest.lstrip(" \t")
    if not rest or rest[0] == "#":
        return "missing the final '.' of the triple"
    if rest[0] != ".":
        return f"unexpected {rest[:12]!r} after the object (one triple per line, ending in '.')"
    return f"unexpected {rest[1:].strip()[:12]!r} after the final '.'"


def _term_problem(rest: str, role: str, kinds: tuple[str, ...]) -> str:
    """Why no term of the allowed kinds starts `rest`."""
    opener = rest[:1]
    if (opener == "<" and "iri" in kinds) or (opener == '"' and "literal" in kinds):
        return _inside_problem(rest, *_INSIDE[opener])
    if rest[:2] == "_:" and "bnode" in kinds:
        return f"bad blank node label {rest.split()[0][:40]!r}"
    if not rest or opener == "#":
        return f"missing the {role}"
    return f"the {role} must be {' or '.join(_WANTED[k] for k in kinds)}, not {rest[:20]!r}"


def _inside_problem(rest: str, allowed: re.Pattern, escape: re.Pattern, close: str, what: str) -> str:
    """What ends an IRI or a literal early: a bad escape, a character not allowed, or the end of the line."""
    i = 1
    while i < len(rest) and rest[i] != close:
        if rest[i] == "\\":
            match = escape.match(rest, i)
            if not match:
                return f"bad escape '{_SHOWN_ESCAPE.match(rest, i).group()}' in {what}"
            i = match.end()
        elif not allowed.match(rest[i]):
            return f"character {rest[i]!r} is not allowed in {what}"
        else:
            i += 1
    return f"{what} is not closed with {close!r}"
