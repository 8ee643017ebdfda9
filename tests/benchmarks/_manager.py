"""`sephb manager` as a process for the benchmarks: one place that writes a fleet
file and reads the listening addresses the manager prints at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fleet_toml(managers: list[str], gup: str | None = None,
               site: str = "content_size = 4096") -> str:
    """A fleet file: managers m1, m2, ... on 8014 at priorities 1, 2, ... (in the
    order given), an optional GUP on 2967, the control API on an ephemeral port."""
    parts = [f"[site]\n{site}\n"]
    for i, address in enumerate(managers, 1):
        parts.append(f'[[manager]]\nname = "m{i}"\naddress = "{address}"\n'
                     f"port = 8014\npriority = {i}\n")
    if gup is not None:
        parts.append(f'[gup]\nname = "gup"\naddress = "{gup}"\nport = 2967\n')
    parts.append('[control]\naddress = "127.0.0.1"\nport = 0\n')
    return "".join(parts)


def start_manager(tmp: Path, toml: str, *extra: str
                  ) -> tuple[subprocess.Popen[str], str, dict[str, int]]:
    """`sephb manager` with the fleet file ``toml`` (and ``extra`` arguments): the
    process, the control API's base URL (``http://host:port``) and each server's
    port by name."""
    cfg = tmp / "managers.toml"
    cfg.write_text(toml)
    # -q: a line per request on the terminal would be noise, and cost time a
    # benchmark measures; the failed ones are still said.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sephb.conformance.cli", "manager", "--config", str(cfg),
         "-q", *extra], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    control = ""
    while not control:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the manager did not start")
        parts = line.split()
        if parts[0] == "control":
            control = "http://" + parts[2]
        elif len(parts) >= 3:
            ports[parts[0]] = int(parts[2].rsplit(":", 1)[1])
    return proc, control, ports
