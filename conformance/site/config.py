"""The fleet configuration: simulated managers, a GUP and the control API, from TOML.

Theory of operation
-------------------
A fleet file (``conformance/examples/managers.toml``) lists the managers with the address,
port and priority a client's sylink.xml would name, each manager's LiveUpdate
policies per location, an optional GUP, the shared site state (policy serial, content
revision, content files) and where the control API listens. :func:`load_config`
parses it with :mod:`tomllib` and validates every value; a bad value raises
:class:`~sephb.model.errors.ConfigError` naming the file, the line (found by scanning
the text, since tomllib keeps no positions) and the element, e.g.
``managers.toml:14: <manager[2].port> expected an integer 0..65535, got '8014'``.

Binding outside 127.0.0.0/8 is refused unless the caller passes an explicit listen
address (:func:`apply_listen`): a conformance kit should not open ports on a network
by accident.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, NoReturn

from sephb.conformance.traces.wire import GUP_PORT, MANAGER_PORT, Role, parse_serial
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Source

__all__ = [
    "DEFAULT_SERIAL",
    "ControlSpec",
    "FleetConfig",
    "ServerSpec",
    "apply_listen",
    "load_config",
    "parse_config",
]

DEFAULT_SERIAL: Final = "A3AF-11/26/2026 23:50:54 284"
DEFAULT_FILES: Final = ("avdefs.zip",)
DEFAULT_CONTENT_SIZE: Final = 64 * 1024
#: Largest request body a server reads; above it the answer is 413. The seed's
#: largest heartbeat is 300 KB; 8 MiB leaves room for big log batches.
DEFAULT_MAX_UPLOAD: Final = 8 * 1024 * 1024
#: Wall seconds a server waits for the rest of a request's head once its first byte
#: came (a slow-header client holds a connection for nothing; nginx's
#: client_header_timeout plays the same part). The answer is 408.
DEFAULT_HEADER_TIMEOUT: Final = 10.0
#: Wall seconds a server waits for the next bytes of a request body (408 after it).
DEFAULT_BODY_TIMEOUT: Final = 10.0
#: Wall seconds a connection with no request in progress may stay silent before the
#: server closes it. A request the server holds on purpose (push, ``stall``) is in
#: progress: it is never cut.
DEFAULT_IDLE_TIMEOUT: Final = 60.0
#: Bounds of the three timeouts (wall seconds): a day is more than any run needs.
_TIMEOUT_RANGE: Final = (0.01, 86_400.0)
LOOPBACK: Final = ipaddress.IPv4Network("127.0.0.0/8")
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_FILE_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
class ControlSpec:
    """Where the JSON control API listens (always loopback)."""

    address: str = "127.0.0.1"
    #: 0: an ephemeral port, printed at start.
    port: int = 0


@dataclass(frozen=True)
class FleetConfig:
    """A validated fleet: what :class:`~sephb.conformance.site._server.Fleet` starts."""

    managers: tuple[ServerSpec, ...]
    gup: ServerSpec | None = None
    control: ControlSpec | None = None
    #: Initial policy serial; its group id prefixes every later serial.
    serial: str = DEFAULT_SERIAL
    #: Initial content revision.
    content: int = 1
    #: Content files of every revision, and the size of each in bytes.
    files: tuple[str, ...] = DEFAULT_FILES
    content_size: int = DEFAULT_CONTENT_SIZE
    max_upload: int = DEFAULT_MAX_UPLOAD
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    path: str = "<config>"

    @property
    def servers(self) -> tuple[ServerSpec, ...]:
        return self.managers + ((self.gup,) if self.gup else ())

    @classmethod
    def loopback(
        cls,
        addresses: list[str],
        *,
        gup: str | None = None,
        manager_port: int = MANAGER_PORT,
        gup_port: int = GUP_PORT,
        control: ControlSpec | None = None,
        **site: Any,
    ) -> FleetConfig:
        """A fleet for tests: one manager per address (m1, m2, ... with priorities 1,
        2, ...), an optional GUP; ``site`` sets serial, content, files, content_size,
        max_upload and the timeouts. Validated like a file."""
        if isinstance(site.get("files"), tuple):
            site["files"] = list(site["files"])
        doc: dict[str, Any] = {
            "site": site,
            "manager": [
                {"name": f"m{i}", "address": a, "port": manager_port, "priority": i}
                for i, a in enumerate(addresses, 1)
            ],
        }
        if gup is not None:
            doc["gup"] = {"name": "gup", "address": gup, "port": gup_port}
        if control is not None:
            doc["control"] = {"address": control.address, "port": control.port}
        cfg = _build(doc, "<loopback>", _Lines(""))
        return cfg if control is not None else replace(cfg, control=None)


def load_config(path: str) -> FleetConfig:
    """Read and validate a fleet file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: str = "<string>") -> FleetConfig:
    """Validate a fleet file's text; ``path`` only names it in messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(path, line, None, f"not valid TOML: {what}") from None
    return _build(doc, path, _Lines(text))


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
                    f"(or --listen 0.0.0.0) to bind a non-loopback address explicitly",
                )
        return config
    try:
        ipaddress.IPv4Address(listen)
    except ValueError:
        raise UsageError(f"--listen {listen!r}: expected an IPv4 address") from None
    return replace(
        config,
        managers=tuple(replace(m, address=listen) for m in config.managers),
        gup=replace(config.gup, address=listen) if config.gup else None,
    )


# --- validation ------------------------------------------------------------------


class _Lines:
    """Finds the line of a table or key in TOML text (tomllib keeps no positions)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers = [
            (i + 1, m.group(1).replace('"', "").replace("'", "").replace(" ", ""))
            for i, ln in enumerate(self.lines)
            if (m := self._HEADER.match(ln))
        ]

    def table(self, name: str, index: int = 0) -> int | None:
        """Line of the ``index``-th ``[name]`` / ``[[name]]`` header."""
        found = [ln for ln, h in self.headers if h == name]
        return found[index] if index < len(found) else None

    def key(self, table: str, index: int, key: str) -> int | None:
        """Line of ``key = ...`` in that table or its sub-tables; else the table's."""
        start = self.table(table, index) if table else 0
        if start is None:
            return None
        # The block ends at the next header that is not one of its sub-tables.
        end = next(
            (ln for ln, h in self.headers
             if ln > start and not (table and h.startswith(table + "."))),
            len(self.lines) + 1,
        )
        k = re.escape(key)
        pat = re.compile(rf"""^\s*(["']?){k}\1\s*=|[{{,]\s*(["']?){k}\2\s*=""")
        for n in range(start, end - 1):
            if pat.search(self.lines[n]):
                return n + 1
        return start or None


class _Checker:
    def __init__(self, path: str, lines: _Lines):
        self.path, self.lines = path, lines

    def fail(self, table: str, index: int, key: str | None, elem: str, what: str
             ) -> NoReturn:
        line = self.lines.key(table, index, key) if key else self.lines.table(table, index)
        if line is None and key and not table:
            line = self.lines.table(key)  # a top-level [key] table
        raise ConfigError(self.path, line, elem, what)

    def table(self, doc: Mapping[str, Any], key: str, elem: str, *, line: int | None
              ) -> dict[str, Any]:
        v = doc.get(key, {})
        if not isinstance(v, dict):
            raise ConfigError(self.path, line, elem, f"expected a table, got {v!r}")
        return v

    def only(self, tbl: Mapping[str, Any], allowed: set[str], table: str, index: int,
             elem: str) -> None:
        for k in tbl:
            if k not in allowed:
                self.fail(table, index, k, f"{elem}.{k}" if elem else k,
                          f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def seconds(self, tbl: Mapping[str, Any], key: str, default: float, table: str,
                index: int, elem: str) -> float:
        v = tbl.get(key, default)
        lo, hi = _TIMEOUT_RANGE
        if (isinstance(v, bool) or not isinstance(v, (int, float))
                or not lo <= v <= hi):  # NaN fails the comparison too
            self.fail(table, index, key, f"{elem}.{key}",
                      f"expected seconds, a number {lo:g}..{hi:g}, got {v!r}")
        return float(v)

    def int_(self, tbl: Mapping[str, Any], key: str, default: int, lo: int, hi: int,
             table: str, index: int, elem: str) -> int:
        v = tbl.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(table, index, key, f"{elem}.{key}",
                      f"expected an integer {lo}..{hi}, got {v!r}")
        return int(v)

    def str_(self, tbl: Mapping[str, Any], key: str, default: str | None, table: str,
             index: int, elem: str) -> str:
        v = tbl.get(key, default)
        if v is None:
            self.fail(table, index, None, elem, f"missing key {key!r}")
        if not isinstance(v, str):
            self.fail(table, index, key, f"{elem}.{key}", f"expected a string, got {v!r}")
        return str(v)

    def address(self, tbl: Mapping[str, Any], table: str, index: int, elem: str,
                default: str | None = None) -> str:
        v = self.str_(tbl, "address", default, table, index, elem)
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            self.fail(table, index, "address", f"{elem}.address",
                      f"expected an IPv4 address like 127.0.0.2, got {v!r}")
        return v

    def source(self, v: object, table: str, index: int, key: str, elem: str) -> Source:
        try:
            return Source(v)
        except ValueError:
            self.fail(table, index, key, elem,
                      f"expected one of {', '.join(s.value for s in Source)}, got {v!r}")


def _build(doc: Mapping[str, Any], path: str, lines: _Lines) -> FleetConfig:
    c = _Checker(path, lines)
    c.only(doc, {"site", "manager", "gup", "control"}, "", 0, "")

    site = c.table(doc, "site", "site", line=lines.table("site"))
    c.only(site, {"serial", "content", "files", "content_size", "max_upload",
                  "header_timeout", "body_timeout", "idle_timeout"}, "site", 0, "site")
    serial = c.str_(site, "serial", DEFAULT_SERIAL, "site", 0, "site")
    try:
        parse_serial(serial)
    except ValueError as exc:
        c.fail("site", 0, "serial", "site.serial", str(exc))
    content = c.int_(site, "content", 1, 0, 2**53, "site", 0, "site")
    files = site.get("files", list(DEFAULT_FILES))
    if (not isinstance(files, list) or not files
            or not all(isinstance(f, str) and _FILE_RE.match(f) for f in files)
            or len(set(files)) != len(files)):
        c.fail("site", 0, "files", "site.files",
               f"expected a non-empty list of distinct file names "
               f"([A-Za-z0-9._-], at most 64 characters), got {files!r}")
    content_size = c.int_(site, "content_size", DEFAULT_CONTENT_SIZE, 0, 1 << 30, "site",
                          0, "site")
    max_upload = c.int_(site, "max_upload", DEFAULT_MAX_UPLOAD, 1024, 1 << 30, "site", 0,
                        "site")
    header_timeout = c.seconds(site, "header_timeout", DEFAULT_HEADER_TIMEOUT, "site", 0,
                               "site")
    body_timeout = c.seconds(site, "body_timeout", DEFAULT_BODY_TIMEOUT, "site", 0, "site")
    idle_timeout = c.seconds(site, "idle_timeout", DEFAULT_IDLE_TIMEOUT, "site", 0, "site")

    raw_managers = doc.get("manager")
    if not isinstance(raw_managers, list) or not raw_managers:
        raise ConfigError(path, None, "manager",
                          "at least one [[manager]] table is required")
    names: dict[str, str] = {}
    endpoints: dict[tuple[str, int], str] = {}

    def common(tbl: Mapping[str, Any], table: str, index: int, elem: str, role: Role,
               default_name: str | None, default_port: int) -> tuple[str, str, int]:
        name = c.str_(tbl, "name", default_name, table, index, elem)
        if not _NAME_RE.match(name):
            c.fail(table, index, "name", f"{elem}.name",
                   f"expected a name of letters, digits, '-' and '_' (at most 32), "
                   f"got {name!r}")
        if name in names:
            c.fail(table, index, "name", f"{elem}.name",
                   f"name {name!r} is already used by {names[name]}")
        names[name] = elem
        address = c.address(tbl, table, index, elem)
        port = c.int_(tbl, "port", default_port, 0, 65535, table, index, elem)
        if port and (address, port) in endpoints:
            c.fail(table, index, "port", f"{elem}.port",
                   f"{address}:{port} is already used by {endpoints[(address, port)]}")
        endpoints[(address, port)] = elem
        return name, address, port

    managers: list[ServerSpec] = []
    for i, tbl in enumerate(raw_managers):
        elem = f"manager[{i + 1}]"
        if not isinstance(tbl, dict):
            raise ConfigError(path, lines.table("manager", i), elem, "expected a table")
        c.only(tbl, {"name", "address", "port", "priority", "source", "locations"},
               "manager", i, elem)
        name, address, port = common(tbl, "manager", i, elem, Role.MANAGER, None,
                                     MANAGER_PORT)
        priority = c.int_(tbl, "priority", 1, 1, 99, "manager", i, elem)
        source = c.source(tbl.get("source", "manager"), "manager", i, "source",
                          f"{elem}.source")
        locs = tbl.get("locations", {})
        if not isinstance(locs, dict):
            c.fail("manager", i, "locations", f"{elem}.locations",
                   f"expected a table of location = source, got {locs!r}")
        locations = {
            str(k): c.source(v, "manager", i, str(k), f"{elem}.locations.{k}")
            for k, v in locs.items()
        }
        managers.append(ServerSpec(name, Role.MANAGER, address, port, priority, source,
                                   locations, lines.table("manager", i),
                                   lines.key("manager", i, "address")))

    gup: ServerSpec | None = None
    if "gup" in doc:
        tbl = c.table(doc, "gup", "gup", line=lines.table("gup"))
        c.only(tbl, {"name", "address", "port"}, "gup", 0, "gup")
        name, address, port = common(tbl, "gup", 0, "gup", Role.GUP, "gup", GUP_PORT)
        gup = ServerSpec(name, Role.GUP, address, port, line=lines.table("gup"),
                         address_line=lines.key("gup", 0, "address"))
    else:
        for i, m in enumerate(managers):
            for loc, src in [("", m.source), *m.locations.items()]:
                if src is Source.GUP:
                    key = loc or "source"
                    elem = f"manager[{i + 1}]." + (f"locations.{loc}" if loc else "source")
                    c.fail("manager", i, key, elem,
                           "source 'gup' needs a [gup] table, and there is none")

    ctl = c.table(doc, "control", "control", line=lines.table("control"))
    c.only(ctl, {"address", "port"}, "control", 0, "control")
    control = ControlSpec(c.address(ctl, "control", 0, "control", "127.0.0.1"),
                          c.int_(ctl, "port", 0, 0, 65535, "control", 0, "control"))
    if ipaddress.IPv4Address(control.address) not in LOOPBACK:
        c.fail("control", 0, "address", "control.address",
               f"{control.address} is outside 127.0.0.0/8; the control API only "
               f"listens on loopback")

    return FleetConfig(tuple(managers), gup, control, serial, content, tuple(files),
                       content_size, max_upload, header_timeout, body_timeout,
                       idle_timeout, path)
