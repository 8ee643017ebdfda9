"""What ``sephb monitor`` shows: the rows made from its state (a pure function), the
terminal table and the page made from them, ``--web``'s address; and, between real
processes, ``/state`` and the page in headless Chromium for a seeded fault."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
from rich.console import Console
from test_e2e import SCALE, SEPHB, client, running_manager, sylink
from test_monitor import Lines, stop
from test_report import run_chromium

from sephb.conformance.cli import build_parser
from sephb.conformance.monitor._view import (
    ClientRow,
    RelayRow,
    Seen,
    View,
    page,
    rows,
    table,
)
from sephb.conformance.traces.live import LiveClient, Pending, Violation
from sephb.model.protocol import Mode

#: The relays' addresses: beside test_monitor's /24, never the other tests'.
LISTEN_BASE = f"127.{20 + os.getpid() % 200}.251.0"


def pending(requirement: str, due: int) -> Pending:
    return Pending("request", requirement, "answer it", due, f"{requirement} by {due}")


def one(view: View) -> ClientRow:
    assert len(view.clients) == 1, view
    return view.clients[0]


# --- rows -------------------------------------------------------------------------


def test_a_conformant_client_shows_its_state_check_in_and_earliest_deadline() -> None:
    c = LiveClient("c1", "server", 5, 5, 900,
                   pending=(pending("REQ-LATE", 5000), pending("REQ-SOON", 1200)))
    row = one(rows([c], {"c1": Seen("INDEX_RECEIVED", 900, checkin=700)}, {}, now=1000))
    assert (row.client, row.state, row.last_seen, row.checkin) == (
        "c1", "INDEX_RECEIVED", 900, 700)
    assert (row.next_requirement, row.next_due, row.next_in_ms) == ("REQ-SOON", 1200, 200)
    assert row.verdict == "CONFORMANT"
    assert row.requirements == () and row.finding == ""


def test_a_deadline_past_due_shows_negative_time_left() -> None:
    c = LiveClient("c1", "server", 1, 1, 0, pending=(pending("REQ-X", 100),))
    row = one(rows([c], {}, {}, now=350))
    assert row.next_in_ms == -250
    # nothing seen of it by the monitor: the stream's last time, no check-in
    assert (row.state, row.last_seen, row.checkin) == ("", 0, None)


def test_a_proven_violation_comes_first_then_the_presumptive_findings() -> None:
    c = LiveClient("c2", "server", 9, 9, 4000,
                   violation=Violation("REQ-5-LOGS", "logs first", 9, 4000))
    presumed = {"c2": [("REQ-NEXT", "no heartbeat"), ("REQ-5-LOGS", "logs first")]}
    row = one(rows([c], {"c2": Seen("UPLOAD_SENSORS", 4000)}, presumed, now=5000))
    assert row.verdict == "NON-CONFORMANT"
    assert row.requirements == ("REQ-5-LOGS", "REQ-NEXT")
    assert row.finding == "logs first"
    assert row.next_requirement is None  # no deadline after a violation


def test_a_presumptive_finding_alone_is_presumptive() -> None:
    c = LiveClient("c3", "server", 2, 2, 10, pending=(pending("REQ-A", 20),))
    row = one(rows([c], {}, {"c3": [("REQ-A", "no answer acted on")]}, now=9000))
    assert row.verdict == "presumptively NON-CONFORMANT"
    assert row.requirements == ("REQ-A",) and row.finding == "no answer acted on"


def test_one_row_per_client_id_in_order_and_the_relays_as_given() -> None:
    cs = [LiveClient("b", "server", 1, 1, 1), LiveClient("a", "server", 1, 1, 2),
          LiveClient("b", "client", 1, 1, 3)]
    relay = RelayRow("m1", "manager", "127.0.0.2:8014", "127.0.9.1:8014", 2)
    view = rows(cs, {}, {}, now=7, relays=[relay])
    assert [r.client for r in view.clients] == ["b", "a"]
    assert view.clients[0].last_seen == 1 and view.relays == (relay,) and view.now == 7


def test_the_view_is_json_with_its_fields_named() -> None:
    c = LiveClient("c1", "server", 1, 1, 5, pending=(pending("REQ-A", 50),))
    doc = json.loads(msgspec.json.encode(rows([c], {}, {}, now=10)))
    assert doc["now"] == 10
    assert doc["clients"][0]["client"] == "c1"
    assert doc["clients"][0]["next_in_ms"] == 40
    assert doc["clients"][0]["verdict"] == "CONFORMANT"


# --- table and page ---------------------------------------------------------------

EVIL = "<script>alert(1)</script>[bold]x[/bold]"


def evil_view() -> View:
    c = LiveClient(EVIL, "server", 1, 1, 5,
                   violation=Violation("REQ-1", "said <b>this</b> & that", 1, 5))
    relay = RelayRow("m1", "manager", "127.0.0.2:8014", "127.0.9.1:8014", 1)
    return rows([c], {EVIL: Seen("CONNECT", 5, 5)}, {}, now=6, relays=[relay])


def test_the_page_escapes_what_clients_send() -> None:
    html = page(evil_view())
    assert "<script>alert" not in html and "<b>this" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "said &lt;b&gt;this&lt;/b&gt; &amp; that" in html
    assert 'http-equiv="refresh"' in html
    assert "NON-CONFORMANT" in html and "REQ-1" in html and "127.0.9.1:8014" in html


def test_the_table_shows_client_ids_literally() -> None:
    console = Console(width=300, record=True, color_system=None)
    console.print(table(evil_view()))
    text = console.export_text()
    assert EVIL in text  # rich markup in an id is not read
    assert "NON-CONFORMANT" in text and "REQ-1" in text and "127.0.9.1:8014" in text


# --- --web's address --------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:0", ("127.0.0.1", 0)), ("localhost:8080", ("127.0.0.1", 8080)),
    ("[::1]:9000", ("::1", 9000)), ("127.3.4.5:65535", ("127.3.4.5", 65535))])
def test_web_takes_a_loopback_address(text: str, want: tuple[str, int]) -> None:
    args = build_parser().parse_args(["monitor", "--upstream", "u.xml",
                                      "--client-sylink", "c.xml", "--web", text])
    assert args.web == want


@pytest.mark.parametrize("text", ["0.0.0.0:80", "192.168.1.1:8080", "[::]:1",
                                  "127.0.0.1", "127.0.0.1:70000", "example.org:80"])
def test_web_refuses_anything_else_in_one_line(
        text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["monitor", "--upstream", "u.xml",
                                   "--client-sylink", "c.xml", "--web", text])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--web" in err[0], err


# --- between real processes -------------------------------------------------------


@contextmanager
def monitor(tmp: Path, upstream: Path, *extra: str) -> Iterator[tuple[
        subprocess.Popen[str], Lines, Path]]:
    mine = tmp / "client-sylink.xml"
    proc = subprocess.Popen(
        [*SEPHB, "monitor", "--upstream", str(upstream), "--client-sylink", str(mine),
         "--listen-base", LISTEN_BASE, "--time-scale", SCALE, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = Lines(proc)
    try:
        lines.wait_for("clients: use")
        yield proc, lines, mine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def test_the_web_page_shows_a_seeded_fault_with_its_requirement(tmp_path: Path) -> None:
    with running_manager(tmp_path, SCALE) as mgr, \
            monitor(tmp_path, sylink(tmp_path, mgr, Mode.PULL),
                    "--web", "127.0.0.1:0") as (proc, lines, mine):
        url = lines.wait_for("web: http://").split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        empty = json.loads(get(url + "state"))
        assert empty["clients"] == [] and len(empty["relays"]) == 3
        client(tmp_path, mine, "--heartbeats", "1", "--fault", "sensors-before-logs",
               cid="c-fault", check=False)
        said = lines.wait_for("NON-CONFORMANT")
        requirement = next(w.rstrip(":") for w in said.split() if w.startswith("REQ-"))
        state = json.loads(get(url + "state"))
        row = next(r for r in state["clients"] if r["client"] == "c-fault")
        assert row["verdict"] == "NON-CONFORMANT", row
        assert row["requirements"][0] == requirement
        assert row["checkin"] is not None and row["last_seen"] >= row["checkin"]
        dom = run_chromium(tmp_path, "--dump-dom", url).stdout
        assert "c-fault" in dom and "NON-CONFORMANT" in dom and requirement in dom
        code = stop(proc)
    assert code == 1, lines.lines
    # stopped with the monitor: nothing listens on the page's port any more
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 2):
        pass
