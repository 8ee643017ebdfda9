"""Fuzzing the sylink.xml reader (issue 15): whatever the document, ``sylink.parse``
either returns a :class:`Sylink` whose every address the resolver can take, or raises
:class:`ConfigError` with a one-line message. Nothing else: no other exception, no
address that makes the client's first connect die (a ``UnicodeError`` out of
``socket.getaddrinfo`` used to crash the reference client at failover).

The budget is a few seconds in ``make test``; ``SEPHB_FUZZ=long`` runs a hundred
times as many examples per test (minutes): see ``fuzzing.py``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from xml.sax.saxutils import escape

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from test_sylink import CHILDREN

from sephb.conformance.traces import sylink
from sephb.conformance.traces.sylink import Sylink
from sephb.model.errors import ConfigError

FUZZ = fuzz(300)


def connectable(address: str, port: int) -> None:
    """What ``asyncio.open_connection`` does with the address before any packet:
    ``socket.getaddrinfo`` (IDNA-encodes a name). AI_NUMERICHOST keeps it off the
    network: a name is then "not found", a ``gaierror`` (an OSError, which the client
    counts as a failed connection); anything else would escape as a crash. Checked
    independently of the reader's own rules, with the limits DNS puts on a name."""
    with contextlib.suppress(socket.gaierror):
        socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                           flags=socket.AI_NUMERICHOST)
    if ":" in address:
        ipaddress.IPv6Address(address)  # an IPv6 literal, zone and all
        return
    name = address.encode("idna").decode("ascii").removesuffix(".")
    assert len(name) <= 253, address
    assert all(1 <= len(label) <= 63 for label in name.split(".")), address


def parsed_or_refused(text: str | bytes) -> None:
    try:
        s = sylink.parse(text, "fuzz.xml")
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith("fuzz.xml"), msg
        assert msg.splitlines() == [msg], msg  # one line, whatever the values held
        assert len(msg) < 1000, msg  # values are cut, not echoed whole
        return
    assert isinstance(s, Sylink)
    for server in s.servers:
        connectable(server.address, server.port)
    if s.gup is not None:
        connectable(s.gup.address, s.gup.port)


# -- attribute values: what an address, a port, a name could hold ------------------------

_label = st.one_of(
    st.from_regex(r"[A-Za-z0-9_\-]{0,70}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=70),
    st.sampled_from(["xn--", "xn--zz", "-", "_", "\u00ad", "b\u00fccher", "\u3002",
                     "\uff0e", "a" * 63, "a" * 64, "0", "255", "256", "08"]),
)
_ipv6 = st.ip_addresses(v=6).map(str)
addresses = st.one_of(
    st.lists(_label, min_size=1, max_size=6).map(".".join),
    st.lists(st.sampled_from(["a" * 63, "b" * 62, "c"]), min_size=3, max_size=5)
    .map(".".join),  # around 253 characters
    st.tuples(st.lists(st.integers(0, 300), min_size=1, max_size=5),
              st.sampled_from(["", "."])).map(lambda t: ".".join(map(str, t[0])) + t[1]),
    st.ip_addresses(v=4).map(str),
    _ipv6,
    st.tuples(_ipv6, st.text(max_size=20)).map(lambda t: f"{t[0]}%{t[1]}"),
    _ipv6.map(lambda a: f"[{a}]"),
    st.text(max_size=40),
    st.text(st.sampled_from(".:%[]-_a0\u3002 \n\t"), max_size=12),
    st.sampled_from(["", ".", "..", "a..b", "a.", "localhost", "127.1", "::",
                     "x" * 300, "x\n" * 500]),
)
values = st.one_of(
    addresses,
    st.integers(-2, 2**32).map(str),
    st.sampled_from(["PUSH", "pull", "Priority1", "priority02", "Priority0", "1", "0",
                     "", " 8014", "80x4", "9" * 1000]),
    st.text(max_size=30),
)


def attr(value: str) -> str:
    # Character references keep tabs and newlines (literal ones become spaces).
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;",
                                "\t": "&#9;"}) + '"'


# -- documents: sylink's own shape, with every part perturbed ------------------------------

ATTRS = {
    "ServerSettings": ["DomainId"],
    "AgentCommunicationSetting": ["CommunicationMode", "PullHeartbeatSeconds",
                                  "PushHeartbeatSeconds", "RandomizationEnabled",
                                  "RandomizationRange"],
    "ServerPriorityBlock": ["Name"],
    "Server": ["Address", "HttpPort"],
    "Gup": ["Address", "Port"],
}
GOOD = {"CommunicationMode": "PULL", "Name": "Priority1", "Address": "127.0.0.2",
        "HttpPort": "8014", "Port": "2967"}


def element(draw: st.DrawFn, tag: str, depth: int = 0) -> str:
    parts = []
    for a in ATTRS.get(tag, []):
        roll = draw(st.integers(0, 5))
        if roll == 0:
            continue
        # Mostly right where a right value exists, so that documents get as far as
        # the addresses; otherwise anything.
        value = GOOD[a] if roll < 3 and a in GOOD and a != "Address" else draw(
            addresses if a == "Address" else values)
        parts.append(f" {a}={attr(value)}")
    kids: list[str] = []
    for child in CHILDREN.get(tag, []):
        kids += [child] * draw(st.integers(0, 3) if child in ("ServerPriorityBlock",
                                                              "Server")
                               else st.sampled_from([1, 1, 1, 1, 0, 2]))
    if depth < 5 and draw(st.integers(0, 9)) == 0:
        kids.insert(draw(st.integers(0, len(kids))),
                    draw(st.sampled_from(sorted(ATTRS)) | st.from_regex(
                        r"[A-Za-z_][A-Za-z0-9_.\-]{0,200}", fullmatch=True)))
    inner = "".join(element(draw, k, depth + 1) for k in kids)
    return f"<{tag}{''.join(parts)}>\n{inner}</{tag}>\n"


@st.composite
def documents(draw: st.DrawFn) -> str:
    return element(draw, "ServerSettings")


@st.composite
def one_server(draw: st.DrawFn) -> str:
    """A valid document but for the addresses: every draw reaches the address check."""
    servers = "".join(f"<Server Address={attr(draw(addresses))}/>"
                      for _ in range(draw(st.integers(1, 3))))
    gup = draw(st.none() | addresses)
    gups = "" if gup is None else f"<GupList><Gup Address={attr(gup)}/></GupList>"
    return ("<ServerSettings><CommConf>"
            '<AgentCommunicationSetting CommunicationMode="PULL"/>'
            f'<ServerList><ServerPriorityBlock Name="Priority1">{servers}'
            f"</ServerPriorityBlock></ServerList>{gups}</CommConf></ServerSettings>")


@FUZZ
@given(one_server())
def test_every_address_read_can_be_connected_to(text: str) -> None:
    parsed_or_refused(text)


@FUZZ
@given(documents())
def test_generated_documents_parse_or_raise_one_config_error(text: str) -> None:
    parsed_or_refused(text)


@FUZZ
@given(documents(), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_documents_as_bytes_too(text: str, encoding: str) -> None:
    try:
        raw = (f'<?xml version="1.0" encoding="{encoding}"?>\n' + text).encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    parsed_or_refused(raw)
