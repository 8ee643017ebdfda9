"""The fleet configuration: simulated managers, a GUP and the control API, from TOML.

A fleet file (``conformance/examples/managers.toml``) lists the managers with the
address, port and priority a client's sylink.xml would name, their LiveUpdate policies
per location, an optional GUP, the site's shared state and the control API.
:func:`load_config` parses it with :mod:`tomllib` and decodes it into the structs below
(``msgspec.convert(..., strict=True)``), which are the configuration: their types hold
the rules (ranges, patterns, enums, defaults, no unknown key), and a constraint's
description is what a message says was expected; :func:`_build` checks what no type
can say. A bad value is one :class:`~sephb.model.errors.ConfigError` naming file, line
and element: ``managers.toml:14: <manager[2].port> expected an integer 0..65535, got
'8014'``. tomllib and msgspec keep no positions: msgspec's path (``$.manager[1].port``)
becomes a line by a scan of the text (:func:`_line`), done only for a message. Binding
outside 127.0.0.0/8 needs an explicit listen address (:func:`apply_listen`): a
conformance kit should not open ports on a network by accident.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final

import msgspec
from msgspec.structs import asdict, replace

from sephb.conformance.traces.wire import GUP_PORT, MANAGER_PORT, Role, parse_serial
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Source

__all__ = ["DEFAULT_SERIAL", "ControlSpec", "FleetConfig", "GupSpec", "ManagerSpec",
           "ServerSpec", "apply_listen", "load_config", "parse_config"]

DEFAULT_SERIAL: Final = "A3AF-11/26/2026 23:50:54 284"
LOOPBACK: Final = ipaddress.IPv4Network("127.0.0.0/8")

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


class _Site(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[site]``: what the managers share."""

    #: Initial policy serial; its group id prefixes every later serial.
    serial: str = DEFAULT_SERIAL
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


class ManagerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A ``[[manager]]``: one simulated manager."""

    role: ClassVar[Role] = Role.MANAGER
    name: _Name
    address: _Address
    port: _Port = MANAGER_PORT
    #: sylink.xml ServerPriorityBlock (1 = tried first).
    priority: Annotated[int, _ints(1, 99)] = 1
    #: LiveUpdate source of the manager's default policy.
    source: Annotated[Source, msgspec.Meta(description=_SOURCES)] = Source.MANAGER
    #: LiveUpdate source per location name; other locations get ``source``.
    locations: Annotated[dict[str, Source], msgspec.Meta(
        description="a table of location = source")] = {}


class GupSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[gup]``: the simulated Group Update Provider. Where a manager's fields
    are read, it has priority 0 and, serving no policy, a manager's default one."""

    role: ClassVar[Role] = Role.GUP
    priority: ClassVar[int] = 0
    source: ClassVar[Source] = Source.MANAGER
    locations: ClassVar[Mapping[str, Source]] = {}
    address: _Address
    name: _Name = "gup"
    port: _Port = GUP_PORT


#: One simulated manager or GUP.
ServerSpec = ManagerSpec | GupSpec


class ControlSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the JSON control API listens (always loopback); port 0: an ephemeral
    port, printed at start."""

    address: _Address = "127.0.0.1"
    port: _Port = 0


class _File(msgspec.Struct, forbid_unknown_fields=True):
    manager: Annotated[list[ManagerSpec], msgspec.Meta(min_length=1)]
    site: _Site = msgspec.field(default_factory=_Site)
    gup: GupSpec | None = None
    control: ControlSpec = msgspec.field(default_factory=ControlSpec)


_TABLES: Final[dict[str | None, type[msgspec.Struct]]] = {
    None: _File, "site": _Site, "manager": ManagerSpec, "gup": GupSpec,
    "control": ControlSpec}


class FleetConfig(_Site, frozen=True, kw_only=True):
    """A validated fleet: what :class:`~sephb.conformance.site._fleet.Fleet` starts.
    The site's settings are the ``[site]`` table's fields; ``path`` and ``text`` are
    the file's, for messages."""

    managers: tuple[ManagerSpec, ...]
    gup: GupSpec | None
    control: ControlSpec | None
    path: str
    text: str

    @property
    def servers(self) -> tuple[ServerSpec, ...]:
        return self.managers + ((self.gup,) if self.gup else ())

    def error(self, at: ServerSpec | str, key: str | None, what: str) -> ConfigError:
        """``what`` about ``key`` of ``at`` (one of this config's servers, or a table's
        name), or about that table, at its line in the file."""
        return _error(self.path, self.text, *self._table(at), key, what)

    def _table(self, at: ServerSpec | str) -> tuple[str, int]:
        """The table of ``at`` (a server's is named by its role) and its index among
        tables of that name. A server is found by identity: two managers may be equal
        until validated."""
        index = next((i for i, m in enumerate(self.managers) if m is at), 0)
        return at if isinstance(at, str) else at.role.value, index

    @classmethod
    def loopback(cls, addresses: list[str], *, gup: str | None = None,
                 manager_port: int = MANAGER_PORT, gup_port: int = GUP_PORT,
                 control: ControlSpec | None = None, **site: Any) -> FleetConfig:
        """A fleet for tests: one manager per address (m1, m2, ... with priorities 1,
        2, ...), an optional GUP, the control API only if given; ``site`` sets what a
        ``[site]`` table would. Validated like a file."""
        doc: dict[str, Any] = {"site": site, "manager": [
            {"name": f"m{i}", "address": a, "port": manager_port, "priority": i}
            for i, a in enumerate(addresses, 1)]}
        if gup is not None:
            doc["gup"] = {"name": "gup", "address": gup, "port": gup_port}
        if control is not None:
            doc["control"] = msgspec.to_builtins(control)
        cfg = _build(doc, "<loopback>", "")
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
                raise config.error(s, "address", f"{s.address} is outside 127.0.0.0/8; "
                                   f"pass --listen {s.address} (or --listen 0.0.0.0) to "
                                   "bind a non-loopback address explicitly")
        return config
    try:
        ipaddress.IPv4Address(listen)
    except ValueError:
        raise UsageError(f"--listen {listen!r}: expected an IPv4 address") from None
    return replace(config,
                   managers=tuple(replace(m, address=listen) for m in config.managers),
                   gup=replace(config.gup, address=listen) if config.gup else None)


# --- validation ------------------------------------------------------------------------


def _build(doc: dict[str, Any], path: str, text: str) -> FleetConfig:
    try:
        f = msgspec.convert(doc, _File, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc), doc, path, text) from None
    cfg = FleetConfig(**asdict(f.site), managers=tuple(f.manager),
                      gup=f.gup, control=f.control, path=path, text=text)
    try:
        parse_serial(cfg.serial)
    except ValueError as exc:
        raise cfg.error("site", "serial", str(exc)) from None
    if len(set(cfg.files)) != len(cfg.files):
        raise cfg.error("site", "files", f"expected {_FILES}, got {list(cfg.files)!r}")
    names: dict[str, str] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for s in cfg.servers:
        if s.name in names:
            raise cfg.error(s, "name", f"name {s.name!r} is already used by "
                            f"{names[s.name]}")
        if s.port and (s.address, s.port) in endpoints:
            raise cfg.error(s, "port", f"{s.address}:{s.port} is already used by "
                            f"{endpoints[(s.address, s.port)]}")
        names[s.name] = endpoints[(s.address, s.port)] = _elem(*cfg._table(s))
    for m in cfg.managers if cfg.gup is None else ():
        for key, src in [("source", m.source), *(
                (f"locations.{loc}", src) for loc, src in m.locations.items())]:
            if src is Source.GUP:
                raise cfg.error(m, key, "source 'gup' needs a [gup] table, and there is "
                                "none")
    if ipaddress.IPv4Address(f.control.address) not in LOOPBACK:
        raise cfg.error("control", "address", f"{f.control.address} is outside "
                        "127.0.0.0/8; the control API only listens on loopback")
    return cfg


def _invalid(error: str, doc: dict[str, Any], path: str, text: str) -> ConfigError:
    """msgspec's ``<what> - at `$.manager[1].port``` as a message of this module."""
    what, _, at = error.partition(" - at `$")
    field_ = re.search(r"field `(.+)`$", what)  # a missing or unknown key
    if at == ".manager`" or error == "Object missing required field `manager`":
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
    value = value[key]
    hint = typing.get_type_hints(_TABLES[table], include_extras=True)[key]
    expected = ("a string" if what.startswith("Expected `str`,")
                and getattr(hint, "__origin__", hint) is str
                else hint.__metadata__[0].description)
    if parts[-1][1] == "...":  # a location's source: msgspec does not say which
        loc, value = next(((k, v) for k, v in value.items()
                           if v not in [s.value for s in Source]), ("?", value))
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


_HEADER: Final = re.compile(r"^\s*\[\[?\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")


def _line(text: str, table: str | None, index: int = 0, key: str | None = None
          ) -> int | None:
    """The line of ``key = ...`` in the ``index``-th ``[table]``/``[[table]]`` and its
    sub-tables (``[manager.locations]``), else of that header. With no ``table``: a
    top-level ``key = ...`` or ``[key]``; a table with no header is its key's line."""
    lines = text.splitlines()
    heads = [(n, re.sub(r"[\s\"']", "", m.group(1)))  # (line, name without quotes)
             for n, ln in enumerate(lines, 1) if (m := _HEADER.match(ln))]
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
