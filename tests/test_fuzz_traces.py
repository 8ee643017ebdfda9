"""Fuzzers of the trace readers (issue 15): whatever an NDJSON trace or a HAR capture
holds, reading it gives records or the project's clear error (one message naming
the file, the line or entry, and what was expected), never a traceback; and what
``sephb validate`` prints of the result (text and JSON) is made without one too.

The inputs are drawn near the formats: records whose fields take any JSON value,
headers, lines nested far deeper than a decoder recurses, big integers, escapes,
raw bytes, lines cut across the reader's blocks, gzip (whole and cut); HAR captures
of the shipped example with entries changed (URLs with bad ports and hosts, times
without a zone, any JSON in any field), nested, cut, or not HAR at all.

Budget: a few seconds a fuzzer in ``make test``; ``SEPHB_FUZZ=long`` runs a hundred
times the examples (minutes): see ``fuzzing.py``.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Final

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from sephb.conformance.traces import _engine as E
from sephb.conformance.traces import validate as V
from sephb.conformance.traces.har import HarError, har_events
from sephb.conformance.traces.trace import (
    NAMES,
    TraceError,
    header_record,
    read_header,
    read_trace,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HAR: Final = json.loads(
    (ROOT / "conformance" / "examples" / "reference.har").read_text())

FUZZ: Final = fuzz(300)

# --- what the inputs are made of ----------------------------------------------------

#: Any JSON value, small.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)

#: A value nested ``depth`` levels deep, as JSON text.
deep = st.sampled_from([8, 900, 5_000, 150_000]).map(lambda n: "[" * n + "]" * n)


def _field(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A record field's value: mostly of its type, sometimes anything."""
    return st.one_of(right, right, right, json_values)


#: A record: its fields of their types or not, some missing, some extra.
records = st.fixed_dictionaries(
    {},
    optional={
        "t": _field(st.integers(0, 1 << 66)),
        "client": _field(st.sampled_from(["a", "b", "", "[/x]", "\udcff", "é" * 3])),
        "event": _field(st.sampled_from([*NAMES, "FETCH", ""])),
        "by": _field(st.sampled_from(["server", "client", "gup"])),
        "role": _field(st.sampled_from(["manager", "gup"])),
        "changed": _field(st.booleans()),
        "source": _field(st.sampled_from(["manager", "gup", "none"])),
        "port": _field(st.integers(-1, 70_000)),
        "addr": _field(st.sampled_from(["127.0.0.2", "::1"])),
        "ids": _field(st.lists(st.text(max_size=3), max_size=3)),
        "duplicates": _field(st.lists(st.text(max_size=3), max_size=3)),
        "sephb": json_values,
        "x": json_values,
    })


def _encode(doc: Any) -> bytes:
    # ensure_ascii spells a lone surrogate as an escape, as a hostile writer might
    return json.dumps(doc, ensure_ascii=True).encode()


@st.composite
def _mutated(draw: st.DrawFn, line: bytes) -> bytes:
    """A line with a few bytes changed, cut or put in."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(line)))
        how = draw(st.sampled_from(["cut", "put", "flip"]))
        if how == "cut":
            line = line[:at]
        elif how == "put":
            line = line[:at] + draw(st.binary(min_size=1, max_size=4)) + line[at:]
        elif at < len(line):
            line = line[:at] + bytes([line[at] ^ draw(st.integers(1, 255))]) + line[at + 1:]
    return line


lines = st.one_of(
    records.map(_encode),
    records.map(_encode).flatmap(_mutated),
    st.builds(lambda d, where: _encode(d)[:-1] + b',"' + where.encode() + b'":'
              + b"[" * 0 + b"0}", records, st.sampled_from(["x", "sephb"])),
    st.builds(lambda d, nest: _encode(d)[:-1] + (b"," if d else b"") + b'"x":'
              + nest.encode() + b"}", records, deep),
    deep.map(str.encode),
    st.builds(lambda scale, writer: _encode(header_record(scale, writer)),
              st.sampled_from([1.0, 0.01, 0.001]), st.sampled_from(["client", "m"])),
    st.fixed_dictionaries({"sephb": json_values, "version": json_values,
                           "time_scale": json_values, "writer": json_values}
                          ).map(_encode),
    st.binary(max_size=40),
    st.sampled_from([b"", b" ", b"{}", b"null", b"[]", b'{"t":1}{"t":2}',
                     b"\xef\xbb\xbf{}", b'"\\ud800"']),
)
separators = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"", b" ", b"\n\n"])


@st.composite
def ndjson_files(draw: st.DrawFn) -> bytes:
    """A trace: lines and separators, sometimes gzip (whole or cut)."""
    parts = draw(st.lists(st.tuples(lines, separators), max_size=20))
    raw = b"".join(line + sep for line, sep in parts)
    how = draw(st.sampled_from(["plain", "plain", "plain", "gzip", "cut gzip"]))
    if how == "plain":
        return raw
    packed = gzip.compress(raw)
    return packed if how == "gzip" else packed[:draw(st.integers(2, len(packed)))]


# --- checks ---------------------------------------------------------------------------

def _clear(res: V.FileResult, path: str, most_lines: int) -> None:
    """A result of bad input: problems that name the file and a line (or the file
    alone), each with a message; nothing failed; and the command's outputs of it
    are made without a traceback and the JSON reads back."""
    assert res.error is None, res.error
    assert res.problem_count >= len(res.problems)
    for p in res.problems:
        assert p.path == path and p.message.strip(), p
        assert p.line is None or 1 <= p.line <= most_lines, p
        assert str(p).startswith(f"{path}:"), p
    out = io.StringIO()
    V.render([res], out, limit=0, every_client=True, timing=True)
    V.render([res], out)
    assert "sephb validate" in out.getvalue()
    out = io.StringIO()
    V.write_json([res], out)
    doc = json.loads(out.getvalue())
    assert doc["problems"] == res.problem_count and doc["exit"] == V.exit_code([res])


@FUZZ
@given(ndjson_files(), st.sampled_from([64, 4096, 1 << 20]), st.booleans(),
       st.sampled_from([None, "pull", "push"]), st.sampled_from([1 << 30, 1]),
       st.sampled_from([None, 0.001, 1e-300]))
def test_fuzz_ndjson_reader_gives_records_or_clear_problems(
        raw: bytes, block: int, data: bool, mode: str | None, hot: int,
        time_scale: float | None) -> None:
    """``sephb validate`` of any trace: lines read or reported, never raised, in
    small blocks (lines across them), with idle clients parked or not."""
    with tempfile.NamedTemporaryFile(suffix=".ndjson") as f:
        f.write(raw)
        f.flush()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(E, "MAX_LINE", block)
            mp.setattr(E, "HOT_LIMIT", hot)
            res = V.validate_file(f.name, data=data, mode=mode, time_scale=time_scale)
        _clear(res, f.name, raw.count(b"\n") + 1 if raw[:2] != b"\x1f\x8b"
               else 1 << 30)


@FUZZ
@given(ndjson_files())
def test_fuzz_read_trace_gives_records_or_a_trace_error(raw: bytes) -> None:
    """The careful reader (``read_trace``, ``read_header``): every record, or a
    TraceError naming the file and a line."""
    with tempfile.NamedTemporaryFile(suffix=".ndjson") as f:
        f.write(raw)
        f.flush()
        for read in (lambda: list(read_trace(f.name)), lambda: read_header(f.name)):
            try:
                read()
            except TraceError as exc:
                assert exc.path == f.name and exc.what.strip()
                assert exc.line is None or exc.line >= 1


# --- HAR --------------------------------------------------------------------------

#: Hostile values of the fields a HAR reader parses.
_URLS = st.one_of(
    st.builds("{}://{}{}{}".format, st.sampled_from(["http", "https", "ws", "", "HTTP"]),
              st.sampled_from(["127.0.0.2", "[::1]", "[::1", "h", "", "ü.example",
                               "a@b"]),
              st.sampled_from(["", ":8014", ":99999", ":abc", ":-1", ":", ":2967",
                               ":0"]),
              st.sampled_from(["/index.dat", "/urls", "/push", "/logs", "", "/x?y#z"])),
    st.text(max_size=20))
_DATES = st.one_of(
    st.sampled_from(["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.5+02:00",
                     "2026-01-01T00:00:00.000", "0001-01-01T00:00:00Z",
                     "9999-12-31T23:59:59.999999Z", "yesterday", ""]),
    st.integers(-(1 << 40), 1 << 40), st.floats(allow_nan=False, allow_infinity=False))
#: Where in an entry a change goes, and what it may be.
_CHANGES: Final = {
    ("startedDateTime",): _DATES,
    ("time",): st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                         st.integers(-(1 << 70), 1 << 70)),
    ("request", "url"): _URLS,
    ("request", "method"): st.sampled_from(["GET", "POST", "get", ""]),
    ("request", "headers"): st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["X-Sephb-Client", "X-Sephb-Serial", "x"]),
         "value": st.one_of(st.text(max_size=4), json_values)}), max_size=3),
    ("request", "postData"): st.fixed_dictionaries({"text": st.one_of(
        deep, json_values.map(json.dumps), st.text(max_size=10))}),
    ("response", "status"): st.one_of(st.integers(-1, 1000), json_values),
    ("response", "content"): st.fixed_dictionaries({"text": st.one_of(
        deep, json_values.map(json.dumps),
        st.fixed_dictionaries({"acked": json_values, "source": json_values,
                               "serial": json_values}).map(json.dumps))}),
    ("response", "_error"): st.one_of(st.none(), st.text(max_size=5)),
    ("serverIPAddress",): st.one_of(st.none(), st.text(max_size=8)),
    ("connection",): st.one_of(st.none(), st.sampled_from(["c", "d"])),
    ("_sephb_role",): st.one_of(st.none(), st.sampled_from(["manager", "gup", "x"])),
    (): json_values,
}


@st.composite
def har_files(draw: st.DrawFn) -> bytes:
    """The shipped capture's first entries, some changed; the document itself
    sometimes broken (nested, cut, not HAR)."""
    entries = json.loads(json.dumps(EXAMPLE_HAR["log"]["entries"]))
    entries = entries[:draw(st.integers(0, len(entries)))]
    for _ in range(draw(st.integers(0, 4))):
        if not entries:
            break
        i = draw(st.integers(0, len(entries) - 1))
        # URLs and times twice as often: what the reader parses beyond types
        where = draw(st.sampled_from([*_CHANGES, ("request", "url"),
                                      ("startedDateTime",)]))
        value = draw(_CHANGES[where])
        if not where:
            entries[i] = value
            continue
        at = entries[i]
        for key in where[:-1]:
            at = at.setdefault(key, {}) if isinstance(at, dict) else {}
        if isinstance(at, dict):
            if draw(st.booleans()) and where[-1] in at:
                del at[where[-1]]
            else:
                at[where[-1]] = value
    doc: Any = {"log": {"version": "1.2", "entries": entries}}
    shape = draw(st.sampled_from(["har"] * 6 + ["not har", "deep", "cut", "bytes"]))
    if shape == "not har":
        doc = draw(st.one_of(json_values, st.fixed_dictionaries({"log": json_values})))
    raw = _encode(doc)
    if shape == "deep":
        raw = raw[:-2] + b', "x": ' + draw(deep).encode() + b"}}"
    elif shape == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif shape == "bytes":
        raw = draw(st.binary(max_size=60))
    return raw


@FUZZ
@given(har_files(), st.booleans(), st.sampled_from([None, 1.0, 0.01, 1e-300, 1000.0]),
       st.sampled_from([None, "pull", "push"]))
def test_fuzz_har_reader_gives_events_or_one_clear_problem(
        raw: bytes, data: bool, time_scale: float | None, mode: str | None) -> None:
    """``sephb validate`` of any capture: its events checked, or one problem naming
    the file and the entry (or the JSON line), never raised."""
    with tempfile.NamedTemporaryFile(suffix=".har") as f:
        f.write(raw)
        f.flush()
        try:
            list(har_events(f.name, time_scale=time_scale or 1.0))
        except HarError as exc:
            assert exc.what.strip()
        res = V.validate_file(f.name, data=data, time_scale=time_scale, mode=mode)
        entries = EXAMPLE_HAR["log"]["entries"]
        _clear(res, f.name, max(len(entries), raw.count(b"\n") + 1))
        assert res.format == "har" and res.problem_count <= 1
