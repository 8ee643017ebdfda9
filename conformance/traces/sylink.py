"""Reading and writing sylink.xml, the client's communication settings.

Theory of operation
-------------------
Step 1 of the seed: "SEP client reads sylink.xml to determine first available SEPM
according to priority". This module turns a real-shaped sylink.xml into a frozen
:class:`Sylink` value, and writes one back with :func:`to_xml` (the conformance suite
writes sylink.xml files for the clients under test). Only what the heartbeat needs is
read; everything else a real file carries (certificates, the KCS, the many
``Upload*`` flags) is ignored, so real files load as they are::

    <ServerSettings DomainId="..." NameSpace="rpc">
      <CommConf>
        <AgentCommunicationSetting CommunicationMode="PULL"
            PullHeartbeatSeconds="300" PushHeartbeatSeconds="300"/>
        <ServerList Name="Default Management Server List">
          <ServerPriorityBlock Name="Priority1">
            <Server Address="127.0.0.2" HttpPort="8014"/>
          </ServerPriorityBlock>
        </ServerList>
        <GupList><Gup Address="127.0.0.4" Port="2967"/></GupList>  (our extension)
      </CommConf>
    </ServerSettings>

Parsing is in two layers. The XML layer is ``defusedxml``'s parser with every
protection on: entity declarations and external entities are refused, and a DTD of any
kind is refused too (a real sylink.xml has none); a custom parse target records the
expat line of every start tag so that each later error can say where it is. The
meaning layer walks the small tree and checks it. Any failure in either layer -- a
file that cannot be read, is not XML, is an entity bomb, lacks a required element or
attribute, or holds a value out of range -- is ONE :class:`ConfigError` naming the
file, the line, the element and what was expected::

    sylink.xml:7: <Server> HttpPort must be an integer 1-65535, got "80x4"

Decisions where the real format is silent (each one is tested):

* **Priority** comes from the block's ``Name``, which must be ``Priority<N>`` with N a
  positive integer (the prefix is case-insensitive, leading zeros are allowed). A lower
  N is tried first; gaps are allowed (Priority1, Priority3), the document order of the
  blocks is not used, and two blocks with the same N (``Priority1``, ``priority01``)
  are an error. Within a block the document order of the
  ``<Server>`` elements is kept as :attr:`Server.index` (the client picks at random
  within a priority; the index only names the server). A block may be empty, but the
  list as a whole needs at least one server.
* **Heartbeat**: :attr:`Sylink.heartbeat_s` is the interval of the file's own mode:
  ``PullHeartbeatSeconds`` in pull mode, ``PushHeartbeatSeconds`` in push mode. An
  absent attribute means the model's ``HEARTBEAT_INTERVAL_S`` (300 s, KB 156653); the
  other mode's attribute is never borrowed, since it configures something else.
  :attr:`Sylink.push_heartbeat_s` is always ``PushHeartbeatSeconds`` (same default),
  which the push-heartbeat interpretation switch needs even when read in pull mode.
  Values are decimal digits only, 1 to 2**31-1.
* **Randomization**: ``RandomizationEnabled="1"`` with ``RandomizationRange="<s>"``
  spreads check-ins: the next one may come up to that many seconds after the interval
  (:attr:`Sylink.randomization_s`, ambiguity A15); ``"0"`` or absent means none.
* **CommunicationMode** is required (it decides step 7), ``PUSH`` or ``PULL`` in any
  case. ``<AgentCommunicationSetting>``, ``<ServerList>`` and ``<CommConf>`` are
  required and may appear once.
* **Ports**: ``HttpPort`` defaults to 8014 (the seed's manager content port) and the
  GUP's ``Port`` to 2967 (the seed's GUP port) when absent; present values must be
  decimal integers 1-65535.
* **GUP**: a real sylink.xml names no Group Update Provider (its address comes from
  the LiveUpdate policy). This project adds an optional
  ``<GupList><Gup Address=".." Port="2967"/></GupList>`` under ``<CommConf>`` so that a
  test bed can hand a client its GUP in the same file. At most one ``<Gup>``; an empty
  ``<GupList>`` means no GUP.
* **Addresses** are checked as the resolver will use them, so that a client never
  meets an address it cannot even try: an IPv4 address (four numbers 0-255), an IPv6
  literal without brackets (``::1``, ``fe80::1%eth0``), or a host name whose labels
  are 1-63 letters, digits, ``-`` or ``_`` (not starting or ending with ``-``) once
  IDNA-encoded (``bücher.example`` is fine), at most 253 characters in all, an
  optional trailing dot allowed. A name whose last label is a number must be a whole
  IPv4 address: the resolver reads ``127.1`` as 127.0.0.1.
* Element names are case-sensitive and compared without any XML namespace; unknown
  elements and attributes are ignored.

A value quoted in a message is shown escaped and cut to :data:`SHOWN_CHARS`
characters, so that a newline in an attribute cannot split the message and a 1 MB
attribute does not become a 1 MB line.

Why this module is long: the value, its checks, the hardened XML layer, the meaning
layer and the writer of one small format belong together. Every decision above is
made once, here, for reading and writing alike; split up, the reader and the writer
(and the value's own checks) could drift apart on what a sylink.xml may hold.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from xml.etree.ElementTree import ParseError
from xml.parsers import expat
from xml.sax.saxutils import escape

import defusedxml.ElementTree as _defused  # type: ignore[import-untyped]
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

from sephb.conformance.traces.files import atomic_write
from sephb.model.errors import ConfigError
from sephb.model.protocol import GUP_PORT, HEARTBEAT_INTERVAL_S, MANAGER_CONTENT_PORT, Mode

__all__ = [
    "MAX_BYTES",
    "MAX_HEARTBEAT_S",
    "SHOWN_CHARS",
    "Gup",
    "Server",
    "Sylink",
    "load",
    "parse",
    "save",
    "to_xml",
]

#: A real sylink.xml is a few KB (certificates included); anything this large is not one,
#: and refusing it early keeps a hostile file from costing memory.
MAX_BYTES: Final = 4 * 1024 * 1024
#: Upper bound of a heartbeat interval: a 32-bit signed count of seconds.
MAX_HEARTBEAT_S: Final = 2**31 - 1
_MAX_PRIORITY: Final = 999_999_999

#: At most this many characters of a value are quoted in an error message.
SHOWN_CHARS: Final = 80

# What the resolver takes (see "Addresses" above). The IDNA codec splits names at
# these four dots, so the labels are split the same way here.
_DOTS_RE: Final = re.compile("[.\u3002\uff0e\uff61]")
_LABEL_RE: Final = re.compile(r"(?!-)[A-Za-z0-9_\-]{1,63}(?<!-)")
_ZONE_RE: Final = re.compile(r"[A-Za-z0-9_\-]{1,15}")  # an interface name (IFNAMSIZ)
_MAX_NAME: Final = 253
_PRIORITY_RE: Final = re.compile(r"priority0*([1-9][0-9]{0,8})", re.IGNORECASE)
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
# Ten digits reach past 2**31-1; more are rejected before int() sees them.
_SECONDS_RE: Final = re.compile(r"[0-9]{1,10}")
# XML 1.0 Char production: what an attribute value can carry at all.
_NOT_XML_CHAR_RE: Final = re.compile(
    "[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


# -- the value -------------------------------------------------------------------------


def _check_port(port: int, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{what} must be an integer 1-65535, got {port!r}")


def _quote(value: str) -> str:
    """``value`` in double quotes for a message: escaped as ``repr`` escapes (no raw
    newline or other control character), cut to :data:`SHOWN_CHARS` characters."""
    cut = value[:SHOWN_CHARS]
    inner = repr(cut)[1:-1]
    if repr(cut)[0] == "'":  # repr chose single quotes: re-escape for double ones
        inner = inner.replace("\\'", "'").replace('"', '\\"')
    more = f"... ({len(value):,} characters)" if len(value) > SHOWN_CHARS else ""
    return f'"{inner}"{more}'


def _address_problem(address: str) -> str | None:
    """Why the resolver could not take ``address``; None when it can."""
    if not address:
        return "it is empty"
    if ":" in address:  # only an IPv6 literal has a colon
        if address.startswith("["):
            return "an IPv6 literal is written without brackets, e.g. ::1"
        host, pct, zone = address.partition("%")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "it has a colon but is not an IPv6 address"
        if pct and not _ZONE_RE.fullmatch(zone):
            return ("the zone after '%' must be an interface name (1-15 letters, "
                    "digits, '-' or '_')")
        return None
    if len(address) > 4 * _MAX_NAME:  # long before any encoding could shorten it
        return (f"it is {len(address):,} characters long; a host name has at most "
                f"{_MAX_NAME}")
    labels = _DOTS_RE.split(address)
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # a trailing dot: a fully qualified name
    encoded: list[str] = []
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a dot at the start)"
        try:
            # What socket.getaddrinfo does to each label (nameprep, punycode); an
            # ASCII label goes as it is, and is measured below.
            ascii_label = label if label.isascii() \
                else encodings.idna.ToASCII(label).decode("ascii")
        except UnicodeError as e:
            return f"the label {_quote(label)} cannot be IDNA-encoded ({e})"
        if len(ascii_label) > 63:
            return f"the label {_quote(label)} is {len(ascii_label)} characters long " \
                   "once encoded; at most 63"
        if not _LABEL_RE.fullmatch(ascii_label):
            return f"the label {_quote(label)} may hold only letters, digits, '-' and " \
                   "'_', and may not start or end with '-'"
        encoded.append(ascii_label)
    name = ".".join(encoded)
    if len(name) > _MAX_NAME:
        return f"it is {len(name)} characters long once encoded; at most {_MAX_NAME}"
    if encoded[-1].isdigit():
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return "a name ending in a number must be an IPv4 address (four numbers " \
                   "0-255 without leading zeros): the resolver would read it as one"
    return None


def _check_address(address: str, what: str) -> None:
    problem = (_address_problem(address) if isinstance(address, str)
               else "it is not a str")
    if problem is not None:
        shown = _quote(address) if isinstance(address, str) else repr(address)
        raise ValueError(f"{what} must be an IPv4 address, IPv6 literal or host name, "
                         f"got {shown}: {problem}")


@dataclass(frozen=True)
class Server:
    """One management server (SEPM) of the server list."""

    #: Host name or IP address.
    address: str
    #: The manager's HTTP port (``HttpPort``), 8014 by default.
    port: int = MANAGER_CONTENT_PORT
    #: N of the block's ``Priority<N>``; 1 is tried first.
    priority: int = 1
    #: Position within its priority block, in document order, from 0.
    index: int = 0

    def __post_init__(self) -> None:
        _check_address(self.address, "Server address")
        _check_port(self.port, "Server port")
        if not 1 <= self.priority <= _MAX_PRIORITY:
            raise ValueError(
                f"Server priority must be 1-{_MAX_PRIORITY}, got {self.priority}"
            )
        if self.index < 0:
            raise ValueError(f"Server index must be >= 0, got {self.index}")

    @property
    def name(self) -> str:
        """A stable label for traces and reports, e.g. ``Priority1[0]``."""
        return f"Priority{self.priority}[{self.index}]"

    @property
    def endpoint(self) -> str:
        """``host:port``, with an IPv6 literal in brackets."""
        return _endpoint(self.address, self.port)


@dataclass(frozen=True)
class Gup:
    """The Group Update Provider (this project's ``<GupList>`` extension)."""

    address: str
    port: int = GUP_PORT

    def __post_init__(self) -> None:
        _check_address(self.address, "GUP address")
        _check_port(self.port, "GUP port")

    @property
    def endpoint(self) -> str:
        """``host:port``, with an IPv6 literal in brackets."""
        return _endpoint(self.address, self.port)


def _endpoint(address: str, port: int) -> str:
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


@dataclass(frozen=True)
class Sylink:
    """What the heartbeat needs from sylink.xml.

    Constructing an inconsistent value (no servers, servers out of order, a push-mode
    ``heartbeat_s`` that differs from ``push_heartbeat_s``) raises ``ValueError``: such
    a value has no sylink.xml that reads back as it. Build one from priority blocks
    with :meth:`build`.
    """

    #: ``CommunicationMode``.
    mode: Mode
    #: The check-in interval of this mode, in seconds (see the module docstring).
    heartbeat_s: int
    #: ``PushHeartbeatSeconds``, in seconds.
    push_heartbeat_s: int
    #: Managers ordered by priority, then document order within a priority.
    servers: tuple[Server, ...]
    #: ``DomainId`` of the root element; None when absent.
    domain_id: str | None = None
    #: The GUP, when the file names one.
    gup: Gup | None = None
    #: ``RandomizationRange`` in seconds when ``RandomizationEnabled="1"``, else 0:
    #: how much later than the interval a check-in may come (ambiguity A15).
    randomization_s: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.mode, Mode):
            raise ValueError(f"mode must be a Mode, got {self.mode!r}")
        for name in ("heartbeat_s", "push_heartbeat_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) \
                    or not 1 <= v <= MAX_HEARTBEAT_S:
                raise ValueError(
                    f"{name} must be an integer 1-{MAX_HEARTBEAT_S}, got {v!r}"
                )
        r = self.randomization_s
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= MAX_HEARTBEAT_S:
            raise ValueError(f"randomization_s must be an integer 0-{MAX_HEARTBEAT_S}, "
                             f"got {r!r}")
        if self.mode is Mode.PUSH and self.heartbeat_s != self.push_heartbeat_s:
            raise ValueError(
                "in push mode heartbeat_s is PushHeartbeatSeconds: "
                f"{self.heartbeat_s} != push_heartbeat_s {self.push_heartbeat_s}"
            )
        if not self.servers:
            raise ValueError("a sylink needs at least one server")
        expected: dict[int, int] = {}
        keys = [(s.priority, s.index) for s in self.servers]
        if keys != sorted(keys):
            raise ValueError("servers must be ordered by (priority, index)")
        for s in self.servers:
            if s.index != expected.get(s.priority, 0):
                raise ValueError(
                    f"server indexes within Priority{s.priority} must run 0, 1, ...; "
                    f"got {s.index} at {s.endpoint}"
                )
            expected[s.priority] = s.index + 1
        if self.domain_id is not None and _NOT_XML_CHAR_RE.search(self.domain_id):
            raise ValueError(
                f"domain_id holds a character XML cannot carry: {_quote(self.domain_id)}"
            )

    @classmethod
    def build(
        cls,
        priorities: Sequence[Sequence[str | tuple[str, int]]],
        mode: Mode = Mode.PULL,
        heartbeat_s: int = HEARTBEAT_INTERVAL_S,
        push_heartbeat_s: int | None = None,
        domain_id: str | None = None,
        gup: Gup | str | None = None,
        randomization_s: int = 0,
    ) -> Sylink:
        """A sylink from blocks of managers, highest priority first.

        A manager is ``"host"`` (port 8014) or ``(host, port)``; block *i* becomes
        ``Priority<i+1>``. ``push_heartbeat_s`` defaults to ``heartbeat_s``.
        """
        servers: list[Server] = []
        for p, block in enumerate(priorities, start=1):
            for i, m in enumerate(block):
                host, port = (m, MANAGER_CONTENT_PORT) if isinstance(m, str) else m
                servers.append(Server(host, port, p, i))
        push = heartbeat_s if push_heartbeat_s is None else push_heartbeat_s
        return cls(
            mode=mode,
            heartbeat_s=push if mode is Mode.PUSH else heartbeat_s,
            push_heartbeat_s=push,
            servers=tuple(servers),
            domain_id=domain_id,
            gup=Gup(gup) if isinstance(gup, str) else gup,
            randomization_s=randomization_s,
        )

    def tiers(self) -> tuple[tuple[Server, ...], ...]:
        """The servers grouped by priority, the highest priority (lowest N) first."""
        groups: dict[int, list[Server]] = {}
        for s in self.servers:
            groups.setdefault(s.priority, []).append(s)
        return tuple(tuple(g) for _, g in sorted(groups.items()))


# -- the XML layer ---------------------------------------------------------------------


@dataclass
class _Node:
    """An element as the meaning layer sees it: no text, a line number."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)

    def all(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]


class _DTDRejected(Exception):
    """Raised from expat's end-of-DTD callback: a DTD without any entity in it."""

    def __init__(self, name: str) -> None:
        self.name = name


class _LineTarget:
    """Parse target that builds :class:`_Node` trees.

    ElementTree drops line numbers; expat knows them while its start-element callback
    runs, so the target reads ``CurrentLineNumber`` right there.
    """

    def __init__(self) -> None:
        self.expat: Any = None  # the pyexpat parser, set once the XMLParser exists
        self.root: _Node | None = None
        self._stack: list[_Node] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag.rpartition("}")[2], dict(attrib), self.expat.CurrentLineNumber)
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def end(self, tag: str) -> None:
        self._stack.pop()

    def close(self) -> _Node | None:
        return self.root


def _parse_tree(data: str | bytes, path: str) -> _Node:
    target = _LineTarget()
    # Every defusedxml protection stays on: entity declarations (billion laughs) and
    # external entities raise. forbid_dtd is off only so that a DTD with an entity in
    # it is reported as the entity (the more useful message); any DTD that gets to its
    # end is then refused by the handler below.
    parser = _defused.DefusedXMLParser(
        target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    x = parser.parser
    target.expat = x
    doctype: list[str] = []

    def start_doctype(name: str, *_: object) -> None:
        doctype.append(name)

    def end_doctype() -> None:
        raise _DTDRejected(doctype[-1] if doctype else "?")

    x.StartDoctypeDeclHandler = start_doctype
    x.EndDoctypeDeclHandler = end_doctype
    try:
        parser.feed(data)
        root = parser.close()
    except ParseError as e:
        line, col = e.position
        code = getattr(e, "code", None)
        msg = expat.ErrorString(code) if isinstance(code, int) else str(e)
        raise ConfigError(
            path, line, None, f"not well-formed XML: {msg} (column {col + 1})"
        ) from None
    except EntitiesForbidden as e:
        if e.sysid or e.pubid:
            what = (
                f"external entity {_quote(str(e.name))} "
                f"(system id {_quote(str(e.sysid or e.pubid))}) is forbidden: "
                "it would make the parser read a file or URL"
            )
        else:
            what = (
                f"entity declaration {_quote(str(e.name))} is forbidden: entities allow "
                'expansion bombs ("billion laughs"); sylink.xml declares none'
            )
        raise ConfigError(path, x.CurrentLineNumber, "!ENTITY", what) from None
    except ExternalReferenceForbidden as e:
        raise ConfigError(
            path, x.CurrentLineNumber, None,
            f"external reference ({_quote(str(e.sysid or e.pubid))}) is forbidden",
        ) from None
    except (_DTDRejected, DTDForbidden):
        raise ConfigError(
            path, x.CurrentLineNumber, "!DOCTYPE",
            "a document type declaration is not allowed: sylink.xml has none, and a "
            "DTD is where entity bombs and external entities live",
        ) from None
    except DefusedXmlException as e:  # any protection added by a later defusedxml
        raise ConfigError(path, x.CurrentLineNumber, None,
                          f"refused: {_quote(str(e))}") from None
    except (ValueError, LookupError) as e:
        # pyexpat raises these for input it cannot even decode (e.g. str with lone
        # surrogates); still "not XML" to the user.
        raise ConfigError(path, x.CurrentLineNumber, None,
                          f"not XML: {_quote(str(e))}") from None
    if not isinstance(root, _Node):  # pragma: no cover - expat requires a root element
        raise ConfigError(path, None, None, "no root element")
    return root


# -- the meaning layer -----------------------------------------------------------------


def _err(path: str, node: _Node, what: str) -> ConfigError:
    # A tag is an XML name (no spaces or newlines) but may be any length.
    tag = node.tag if len(node.tag) <= SHOWN_CHARS else node.tag[:SHOWN_CHARS] + "..."
    return ConfigError(path, node.line, tag, what)


def _one(path: str, parent: _Node, tag: str, required: bool) -> _Node | None:
    found = parent.all(tag)
    if len(found) > 1:
        raise _err(
            path, found[1], f"only one <{tag}> is allowed in <{parent.tag}> "
            f"(the first is on line {found[0].line})",
        )
    if not found and required:
        raise _err(path, parent, f"must contain a <{tag}> element")
    return found[0] if found else None


def _attr(path: str, node: _Node, name: str, hint: str = "") -> str:
    try:
        return node.attrib[name]
    except KeyError:
        raise _err(path, node, f"missing required attribute {name}{hint}") from None


def _port(path: str, node: _Node, name: str, default: int) -> int:
    raw = node.attrib.get(name)
    if raw is None:
        return default
    if _PORT_RE.fullmatch(raw) and 1 <= int(raw) <= 65535:
        return int(raw)
    raise _err(path, node, f"{name} must be an integer 1-65535, got {_quote(raw)}")


def _seconds(path: str, node: _Node, name: str) -> int:
    raw = node.attrib.get(name)
    if raw is None:
        return HEARTBEAT_INTERVAL_S
    if _SECONDS_RE.fullmatch(raw) and 1 <= int(raw) <= MAX_HEARTBEAT_S:
        return int(raw)
    raise _err(
        path, node,
        f"{name} must be a positive integer of seconds (1-{MAX_HEARTBEAT_S}), "
        f"got {_quote(raw)}",
    )


def _randomization(path: str, node: _Node) -> int:
    """``RandomizationRange`` seconds when ``RandomizationEnabled="1"``; 0 when it is
    "0" or absent. (Real files are said to spell some flags "Enabled = 0, Disabled =
    1"; this one is read as 1 = on, the way the vendor's sample files pair it with a
    range.) A range given while disabled is still checked: a bad value is a bad file."""
    raw = node.attrib.get("RandomizationEnabled")
    if raw is not None and raw.strip() not in ("0", "1"):
        raise _err(path, node,
                   f'RandomizationEnabled must be "0" or "1", got {_quote(raw)}')
    rng = node.attrib.get("RandomizationRange")
    if rng is not None and not (_SECONDS_RE.fullmatch(rng.strip())
                                and int(rng) <= MAX_HEARTBEAT_S):
        raise _err(path, node, f"RandomizationRange must be an integer of seconds "
                               f"(0-{MAX_HEARTBEAT_S}), got {_quote(rng)}")
    if raw is None or raw.strip() != "1":
        return 0
    return int(rng) if rng is not None else 0


def _address(path: str, node: _Node) -> str:
    raw = _attr(path, node, "Address")
    problem = _address_problem(raw)
    if problem is not None:
        raise _err(path, node, "Address must be an IPv4 address, IPv6 literal or host "
                   f"name, got {_quote(raw)}: {problem}")
    return raw


def _mode(path: str, node: _Node) -> Mode:
    raw = _attr(path, node, "CommunicationMode", " (PUSH or PULL)")
    try:
        return Mode(raw.lower())
    except ValueError:
        raise _err(
            path, node, f"CommunicationMode must be PUSH or PULL, got {_quote(raw)}"
        ) from None


def _servers(path: str, server_list: _Node) -> tuple[Server, ...]:
    blocks: dict[int, _Node] = {}
    servers: list[Server] = []
    hint = ' ("Priority<N>", N = 1, 2, ...)'
    for block in server_list.all("ServerPriorityBlock"):
        name = _attr(path, block, "Name", hint)
        m = _PRIORITY_RE.fullmatch(name)
        if not m:
            raise _err(
                path, block, f'Name must be "Priority<N>" with N a positive integer, '
                f"got {_quote(name)}",
            )
        prio = int(m.group(1))
        if prio in blocks:
            raise _err(
                path, block, f"Name {_quote(name)} repeats priority {prio} of the block "
                f"on line {blocks[prio].line}",
            )
        blocks[prio] = block
        for i, s in enumerate(block.all("Server")):
            servers.append(
                Server(_address(path, s), _port(path, s, "HttpPort", MANAGER_CONTENT_PORT),
                       prio, i)
            )
    if not servers:
        raise _err(path, server_list, "has no <Server>: at least one management server "
                   "is required (inside <ServerPriorityBlock Name=\"Priority1\">)")
    # Stable sort: document order within a priority survives.
    servers.sort(key=lambda s: s.priority)
    return tuple(servers)


def _gup(path: str, commconf: _Node) -> Gup | None:
    gup_list = _one(path, commconf, "GupList", required=False)
    if gup_list is None:
        return None
    node = _one(path, gup_list, "Gup", required=False)
    if node is None:
        return None
    return Gup(_address(path, node), _port(path, node, "Port", GUP_PORT))


def _interpret(root: _Node, path: str) -> Sylink:
    if root.tag != "ServerSettings":
        raise _err(path, root, "is not a sylink.xml: the root element must be "
                   "<ServerSettings>")
    commconf = _one(path, root, "CommConf", required=True)
    assert commconf is not None
    acs = _one(path, commconf, "AgentCommunicationSetting", required=True)
    assert acs is not None
    mode = _mode(path, acs)
    # Both are checked whatever the mode: a bad value is a bad file either way.
    pull_s = _seconds(path, acs, "PullHeartbeatSeconds")
    push_s = _seconds(path, acs, "PushHeartbeatSeconds")
    server_list = _one(path, commconf, "ServerList", required=True)
    assert server_list is not None
    servers = _servers(path, server_list)
    return Sylink(
        randomization_s=_randomization(path, acs),
        mode=mode,
        heartbeat_s=push_s if mode is Mode.PUSH else pull_s,
        push_heartbeat_s=push_s,
        servers=servers,
        domain_id=root.attrib.get("DomainId"),
        gup=_gup(path, commconf),
    )


# -- public entry points ---------------------------------------------------------------


def parse(text: str | bytes, path: str = "<string>") -> Sylink:
    """Read a sylink.xml document; ``path`` only names it in error messages.

    Raises :class:`ConfigError` and nothing else for any input.
    """
    if len(text) > MAX_BYTES:
        raise ConfigError(path, None, None, f"too large for a sylink.xml "
                          f"({len(text)} > {MAX_BYTES} bytes)")
    return _interpret(_parse_tree(text, path), path)


def load(path: str | Path) -> Sylink:
    """Read sylink.xml from a file. Raises :class:`ConfigError` and nothing else.

    Only a regular file is read: a FIFO (or a terminal, a socket) would block the
    reader until someone writes to it, possibly for ever.
    """
    name = str(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(name, None, None, f"cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(name, None, None, "cannot read: Is a directory")
        if not stat.S_ISREG(mode):
            raise ConfigError(name, None, None, f"cannot read: not a regular file "
                              f"({_file_kind(mode)}); sylink.xml must be a file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(name, None, None, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return parse(data, name)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _a(value: str | int) -> str:
    # Tabs and newlines as character references: literal ones would come back as
    # spaces (attribute-value normalisation).
    return escape(str(value), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def to_xml(s: Sylink, blocks: Sequence[int] = ()) -> str:
    """A sylink.xml document that :func:`parse` reads back as ``s``; ``blocks``: the
    order to list the priority blocks in, by N (default: 1 first). The document order
    means nothing to a client; a test of one may want it shuffled."""
    root = f' DomainId="{_a(s.domain_id)}"' if s.domain_id is not None else ""
    acs = f'CommunicationMode="{s.mode.name}"'
    if s.mode is Mode.PULL:
        acs += f' PullHeartbeatSeconds="{s.heartbeat_s}"'
    acs += f' PushHeartbeatSeconds="{s.push_heartbeat_s}"'
    if s.randomization_s:
        acs += f' RandomizationEnabled="1" RandomizationRange="{s.randomization_s}"'
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ServerSettings{root} NameSpace="rpc">',
        "  <CommConf>",
        f"    <AgentCommunicationSetting {acs}/>",
        '    <ServerList Name="Default Management Server List">',
    ]
    tiers = {tier[0].priority: tier for tier in s.tiers()}
    if blocks and sorted(blocks) != sorted(tiers):
        raise ValueError(f"blocks {list(blocks)}: expected an order of {sorted(tiers)}")
    for tier in (tiers[n] for n in (blocks or sorted(tiers))):
        out.append(f'      <ServerPriorityBlock Name="Priority{tier[0].priority}">')
        out += [f'        <Server Address="{_a(m.address)}" HttpPort="{m.port}"/>'
                for m in tier]
        out.append("      </ServerPriorityBlock>")
    out.append("    </ServerList>")
    if s.gup is not None:
        out += [
            "    <GupList>",
            f'      <Gup Address="{_a(s.gup.address)}" Port="{s.gup.port}"/>',
            "    </GupList>",
        ]
    out += ["  </CommConf>", "</ServerSettings>", ""]
    return "\n".join(out)


def save(s: Sylink, path: str | Path, blocks: Sequence[int] = ()) -> None:
    """Write ``s`` to ``path`` atomically, so a client reading it mid-write sees the old
    file or the new one, never half of one (``blocks``: as :func:`to_xml`)."""
    atomic_write(Path(path), to_xml(s, blocks).encode("utf-8"))
