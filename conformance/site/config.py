"""The fleet configuration: simulated managers, a GUP and the control API, from TOML.

A fleet file (``conformance/examples/managers.toml``) lists the managers with the
address, port and priority a client's sylink.xml would name, their LiveUpdate policies
per location, an optional GUP, the site's shared state and the control API.
:func:`load_config` parses it with :mod:`tomllib` and decodes it into the structs of
"the file's schema" (``msgspec.convert(..., strict=True)``): their types hold the rules
(ranges, patterns, enums, defaults, no unknown key), and a constraint's description
is what a message says was expected; :func:`_build` checks what no type can say. A bad
value is one :class:`~sephb.model.errors.ConfigError` naming file, line and element:
``managers.toml:14: <manager[2].port> expected an integer 0..65535, got '8014'``.
tomllib and msgspec keep no positions: msgspec's path (``$.manager[1].port``) becomes
a line by a scan of the text (:func:`_line`). Binding outside 127.0.0.0/8 needs an
explicit listen address (:func:`apply_listen`): a conformance kit should not open
ports on a network by accident.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final, NoReturn

import msgspec

from sephb.conformance.traces.wire import GUP_PORT, MANAGER_PORT, Role, parse_serial
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Source

__all__ = ["DEFAULT_SERIAL", "ControlSpec", "FleetConfig", "ServerSpec", "apply_listen",
           "load_config", "parse_config"]

DEFAULT_SERIAL: Final = "A3AF-11/26/2026 23:50:54 284"
LOOPBACK: Final = ipaddress.IPv4Network("127.0.0.0/8")


@dataclass(frozen=True)
class ServerSpec:
    """One simulated manager or GUP."""

    name: str
    role: Role
    address: str
    port: int
    #: sylink.xml ServerPriorityBlock (1 = tried first); 0 for the GUP.
    priority: int = 0
    #: LiveUpdate source of the manager's default policy.
    source: Source = Source.MANAGER
    #: LiveUpdate source per location name; other locations get ``source``.
    locations: Mapping[str, Source] = field(default_factory=dict)
    #: Lines of its table and of its address in the config file, for messages.
    line: int | None = None
    address_line: int | None = None


@dataclass(frozen=True)
class FleetConfig:
    """A validated fleet: what :class:`~sephb.conformance.site._fleet.Fleet` starts.
    The site's settings and their defaults are those of the ``[site]`` table
    (:class:`_Site`)."""

    managers: tuple[ServerSpec, ...]
    gup: ServerSpec | None
    control: ControlSpec | None
    serial: str
    content: int
    files: tuple[str, ...]
    content_size: int
    max_upload: int
    header_timeout: float
    body_timeout: float
    idle_timeout: float
    path: str

    @property
    def servers(self) -> tuple[ServerSpec, ...]:
        return self.managers + ((self.gup,) if self.gup else ())

    @classmethod
    def loopback(cls, addresses: list[str], *, gup: str | None = None,
                 manager_port: int = MANAGER_PORT, gup_port: int = GUP_PORT,
                 control: ControlSpec | None = None, **site: Any) -> FleetConfig:
        """A fleet for tests: one manager per address (m1, m2, ... with priorities 1,
        2, ...), an optional GUP; ``site`` sets serial, content, files, content_size,
        max_upload and the timeouts. Validated like a file."""
        doc: dict[str, Any] = {"site": site, "manager": [
            {"name": f"m{i}", "address": a, "port": manager_port, "priority": i}
            for i, a in enumerate(addresses, 1)]}
        if gup is not None:
            doc["gup"] = {"name": "gup", "address": gup, "port": gup_port}
        cfg = _build(doc | ({"control": msgspec.to_builtins(control)} if control else {}),
                     "<loopback>", "")
        return cfg if control is not None else replace(cfg, control=None)


def load_config(path: str) -> FleetConfig:
    """Read and validate a fleet file."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: str = "<string>") -> FleetConfig:
    """Validate a fleet file's text; ``path`` only names it in messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\s*\(at line (\d+), column \d+\)", str(exc))
        raise ConfigError(path, int(m.group(1)) if m else None, None, "not valid TOML: "
                          + str(exc).replace(m.group(0) if m else "", "")) from None
    return _build(doc, path, text)


def apply_listen(config: FleetConfig, listen: str | None) -> FleetConfig:
    """Without ``listen``, refuse any server address outside 127.0.0.0/8. With it,
    every manager and the GUP bind ``listen`` instead (keeping their ports); the
    control API stays where it is, on loopback."""
    if listen is None:
        for s in config.servers:
            if ipaddress.IPv4Address(s.address) not in LOOPBACK:
                elem = (f"manager[{config.managers.index(s) + 1}].address"
                        if s.role is Role.MANAGER else "gup.address")
                raise ConfigError(
                    config.path, s.address_line or s.line, elem,
                    f"{s.address} is outside 127.0.0.0/8; pass --listen {s.address} "
                    f"(or --listen 0.0.0.0) to bind a non-loopback address explicitly")
        return config
    try:
        ipaddress.IPv4Address(listen)
    except ValueError:
        raise UsageError(f"--listen {listen!r}: expected an IPv4 address") from None
    return replace(config,
                   managers=tuple(replace(m, address=listen) for m in config.managers),
                   gup=replace(config.gup, address=listen) if config.gup else None)


# --- the file's schema -----------------------------------------------------------------
# A description completes "expected <description>, got <the value>" in a message.


def _ints(lo: int, hi: int) -> msgspec.Meta:
    return msgspec.Meta(ge=lo, le=hi, description=f"an integer {lo}..{hi}")


_OCTET: Final = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # no leading zero
_Address = Annotated[str, msgspec.Meta(pattern=rf"^({_OCTET}\.){{3}}{_OCTET}\Z",
                                       description="an IPv4 address like 127.0.0.2")]
_Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z",
                                    description="a name of letters, digits, '-' and '_' "
                                                "(at most 32)")]
_Port = Annotated[int, _ints(0, 65535)]
#: Wall seconds; a day is more than any run needs. (NaN fails the bounds too.)
_Seconds = Annotated[float, msgspec.Meta(ge=0.01, le=86_400.0,
                                         description="seconds, a number 0.01..86400")]
_SOURCES: Final = f"one of {', '.join(s.value for s in Source)}"
_FILES: Final = ("a non-empty list of distinct file names ([A-Za-z0-9._-], at most 64 "
                 "characters)")


class _Site(msgspec.Struct, forbid_unknown_fields=True):
    """``[site]``: what the managers share."""

    #: Initial policy serial; its group id prefixes every later serial.
    serial: Annotated[str, msgspec.Meta(description="a string")] = DEFAULT_SERIAL
    #: Initial content revision.
    content: Annotated[int, _ints(0, 2**53)] = 1
    #: Content files of every revision, and the size of each in bytes.
    files: Annotated[tuple[Annotated[str, msgspec.Meta(
        pattern=r"^[A-Za-z0-9._-]{1,64}\Z")], ...], msgspec.Meta(
            min_length=1, description=_FILES)] = ("avdefs.zip",)
    content_size: Annotated[int, _ints(0, 1 << 30)] = 64 * 1024
    #: Largest request body a server reads; above it the answer is 413. The seed's
    #: largest heartbeat is 300 KB; 8 MiB leaves room for big log batches.
    max_upload: Annotated[int, _ints(1024, 1 << 30)] = 8 * 1024 * 1024
    #: How long a server waits for the rest of a request's head once its first byte
    #: came (a slow-header client holds a connection for nothing; nginx's
    #: client_header_timeout plays the same part). The answer is 408.
    header_timeout: _Seconds = 10.0
    #: How long a server waits for the next bytes of a request body (408 after it).
    body_timeout: _Seconds = 10.0
    #: How long a connection with no request in progress may stay silent before the
    #: server closes it. A request the server holds on purpose (push, ``stall``) is
    #: in progress: it is never cut.
    idle_timeout: _Seconds = 60.0


class _Manager(msgspec.Struct, forbid_unknown_fields=True):
    name: _Name
    address: _Address
    port: _Port = MANAGER_PORT
    priority: Annotated[int, _ints(1, 99)] = 1
    source: Annotated[Source, msgspec.Meta(description=_SOURCES)] = Source.MANAGER
    locations: Annotated[dict[str, Source], msgspec.Meta(
        description="a table of location = source")] = {}


class _Gup(msgspec.Struct, forbid_unknown_fields=True):
    address: _Address
    name: _Name = "gup"
    port: _Port = GUP_PORT


class ControlSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the JSON control API listens (always loopback); port 0: an ephemeral
    port, printed at start."""

    address: _Address = "127.0.0.1"
    port: _Port = 0


class _File(msgspec.Struct, forbid_unknown_fields=True):
    manager: Annotated[list[_Manager], msgspec.Meta(min_length=1)]
    site: _Site = msgspec.field(default_factory=_Site)
    gup: _Gup | None = None
    control: ControlSpec = msgspec.field(default_factory=ControlSpec)


_TABLES: Final[dict[str | None, type[msgspec.Struct]]] = {
    None: _File, "site": _Site, "manager": _Manager, "gup": _Gup, "control": ControlSpec}


# --- validation ------------------------------------------------------------------------


def _build(doc: dict[str, Any], path: str, text: str) -> FleetConfig:
    try:
        f = msgspec.convert(doc, _File, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc), doc, path, text) from None

    def fail(table: str, index: int, key: str, what: str) -> NoReturn:
        raise _error(path, text, table, index, key, what)

    try:
        parse_serial(f.site.serial)
    except ValueError as exc:
        fail("site", 0, "serial", str(exc))
    if len(set(f.site.files)) != len(f.site.files):
        fail("site", 0, "files", f"expected {_FILES}, got {list(f.site.files)!r}")
    servers: list[tuple[str, int, _Manager | _Gup]] = [
        ("manager", i, m) for i, m in enumerate(f.manager)]
    servers += [("gup", 0, f.gup)] if f.gup else []
    names: dict[str, str] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for table, i, s in servers:
        if s.name in names:
            fail(table, i, "name", f"name {s.name!r} is already used by {names[s.name]}")
        if s.port and (s.address, s.port) in endpoints:
            fail(table, i, "port", f"{s.address}:{s.port} is already used by "
                 f"{endpoints[(s.address, s.port)]}")
        names[s.name] = endpoints[(s.address, s.port)] = _elem(table, i)
    for i, m in enumerate(f.manager if f.gup is None else ()):
        for key, src in [("source", m.source), *(
                (f"locations.{loc}", src) for loc, src in m.locations.items())]:
            if src is Source.GUP:
                fail("manager", i, key, "source 'gup' needs a [gup] table, and there is "
                     "none")
    if ipaddress.IPv4Address(f.control.address) not in LOOPBACK:
        fail("control", 0, "address", f"{f.control.address} is outside 127.0.0.0/8; "
             "the control API only listens on loopback")

    def spec(table: str, i: int, s: _Manager | _Gup, role: Role, **kw: Any) -> ServerSpec:
        return ServerSpec(s.name, role, s.address, s.port, **kw, line=_line(text, table, i),
                          address_line=_line(text, table, i, "address"))

    return FleetConfig(
        tuple(spec("manager", i, m, Role.MANAGER, priority=m.priority, source=m.source,
                   locations=m.locations) for i, m in enumerate(f.manager)),
        spec("gup", 0, f.gup, Role.GUP) if f.gup else None, f.control,
        **msgspec.structs.asdict(f.site), path=path)


def _invalid(error: str, doc: dict[str, Any], path: str, text: str) -> ConfigError:
    """msgspec's ``<what> - at `$.manager[1].port``` as a message of this module."""
    what, _, at = error.partition(" - at `$")
    field_ = re.search(r"field `(.+)`$", what)  # a missing or unknown key
    if at == ".manager`" or (not at and field_ and field_.group(1) == "manager"):
        return ConfigError(path, None, "manager", "at least one [[manager]] table is "
                           "required")  # none, an empty list, not a list
    parts = re.findall(r"\.([^.\[`]+)|\[(\d+|\.\.\.)\]", at)
    table = parts[0][0] if parts else None
    index = int(parts[1][1]) if table == "manager" and len(parts) > 1 else 0
    key = next((k for k, _ in parts[1:] if k), None)
    if field_ and what.startswith("Object missing"):
        return _error(path, text, table, index, None,
                      f"missing key {field_.group(1)!r}")
    if field_:
        known = ", ".join(sorted(_TABLES[table].__struct_fields__))
        return _error(path, text, table, index, field_.group(1),
                      f"unknown key (expected one of: {known})")
    value = doc[table or ""]
    value = value[index] if table == "manager" else value
    if key is None:
        return _error(path, text, table, index, None, f"expected a table, got {value!r}")
    value, hint = value[key], typing.get_type_hints(_TABLES[table], include_extras=True)
    expected = ("a string" if what.startswith("Expected `str`,") and hint[key].__origin__
                is str else hint[key].__metadata__[0].description)
    if parts[-1][1] == "...":  # a location's source: msgspec does not say which
        loc, value = next(((k, v) for k, v in value.items() if v not in _SOURCE_NAMES),
                          ("?", value))
        key, expected = f"locations.{loc}", _SOURCES
    return _error(path, text, table, index, key, f"expected {expected}, got {value!r}")


def _elem(table: str | None, index: int) -> str:
    return f"manager[{index + 1}]" if table == "manager" else table or ""


def _error(path: str, text: str, table: str | None, index: int, key: str | None,
           what: str) -> ConfigError:
    """``what`` about ``key`` (``locations.Home`` for a sub-table's key) of the
    ``index``-th ``table``, or of that table."""
    elem = ".".join(e for e in (_elem(table, index), key) if e)
    return ConfigError(path, _line(text, table, index, key and key.split(".")[-1]),
                       elem, what)


_SOURCE_NAMES: Final = tuple(s.value for s in Source)  # (a list value is no key)
_HEADER: Final = re.compile(r"^\s*\[\[?\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")


@functools.lru_cache(maxsize=4)
def _scan(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The text's lines, and its table headers: (line, name without quotes)."""
    lines = text.splitlines()
    return lines, [(n, re.sub(r"[\s\"']", "", m.group(1)))
                   for n, ln in enumerate(lines, 1) if (m := _HEADER.match(ln))]


def _line(text: str, table: str | None, index: int = 0, key: str | None = None
          ) -> int | None:
    """The line of ``key = ...`` in the ``index``-th ``[table]``/``[[table]]`` and its
    sub-tables (``[manager.locations]``), else of that header. With no ``table``: a
    top-level ``key = ...`` or ``[key]``; a table with no header is its key's line."""
    lines, heads = _scan(text)
    starts = [n for n, h in heads if h == table] if table else [0]
    if index >= len(starts):
        return _line(text, None, 0, table)
    end = next((n for n, h in heads if n > starts[index]
                and not (table and h.startswith(table + "."))), len(lines) + 1)
    pat = re.compile(rf"""(^|[{{,])\s*(["']?){re.escape(key or "")}\2\s*=""")
    hit = next((n for n in range(starts[index] + 1, end)
                if key and pat.search(lines[n - 1])), None)
    if hit is None and table is None:
        hit = next((n for n, h in heads if h == key), None)
    return hit or starts[index] or None
