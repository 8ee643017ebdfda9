"""The `sephb` command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "conformance" / "examples"


def sephb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sephb.conformance.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_help_teaches_the_commands() -> None:
    res = sephb("--help")
    assert res.returncode == 0
    for word in ("model", "paths", "diagram", "manager", "client", "examples:"):
        assert word in res.stdout


def test_help_imports_no_heavy_library() -> None:
    code = ("import sys, sephb.conformance.cli as c\n"
            "try: c.main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = {'networkx', 'transitions', 'aiohttp', 'hypothesis', 'graphviz'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("interp", ["seed", "documented"])
def test_model_json_has_the_stable_keys(interp: str) -> None:
    res = sephb("model", "--interpretation", interp, "--json")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert {"states", "events", "transitions", "parameters", "interpretations"} <= set(doc)
    assert set(doc["transitions"][0]) == {"source", "event", "dest", "guard", "requirement"}
    assert doc["parameters"]["SESSION_LIMIT_MS"]["value"] == 30_000


def test_model_text_reports_clean_analyses() -> None:
    res = sephb("model")
    assert res.returncode == 0
    assert "0 dead ends, 0 unreachable transitions, 0 problems" in res.stdout


@pytest.mark.parametrize("cover", ["transitions", "edge-pairs", "all"])
def test_paths_json_covers_every_transition(cover: str) -> None:
    res = sephb("paths", "--managers", "3", "--priorities", "2", "--gup", "--mode", "push",
                "-i", "documented", "--cover", cover, "--json")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["covered_transitions"] == doc["total_transitions"] == 68
    assert len(doc["paths"]) == len(doc["names"])
    step = doc["paths"][0][0]
    assert set(step) == {"source", "event", "dest", "guard", "requirement"}
    if cover != "transitions":
        assert doc["covered_edge_pairs"] == doc["total_edge_pairs"]


def test_diagram_writes_files_and_highlights(tmp_path: Path) -> None:
    out = tmp_path / "d.svg"
    res = sephb("diagram", "--highlight", "0", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_text().lstrip().startswith("<?xml")
    res = sephb("diagram", "--format", "mermaid")
    assert res.stdout.startswith("stateDiagram-v2")


@pytest.mark.parametrize(("args", "message"), [
    (["paths", "--managers", "0"], "--managers/-n: must be at least 1, got 0"),
    (["paths", "--priorities", "3"], "--priorities must be between 1 and --managers (1)"),
    (["model", "-i", "literal"], "invalid choice: 'literal'"),
    (["diagram", "--format", "jpeg"], "invalid choice: 'jpeg'"),
    (["diagram", "--highlight", "99"], "--highlight 99: there are"),
    (["diagram", "--format", "png"], "PNG is binary: give -o FILE"),
    (["client", "--sylink", str(EXAMPLES / "sylink-bad-port.xml"), "--state-dir", "x"],
     "sylink-bad-port.xml:"),
    (["client", "--sylink", "/nonexistent/sylink.xml", "--state-dir", "x"],
     "sylink.xml"),
    (["client", "--sylink", str(EXAMPLES / "sylink-pull.xml"), "--state-dir", "x",
      "--time-scale", "0"], "--time-scale: must be > 0"),
    (["manager", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    res = sephb(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_manager_refuses_a_non_loopback_address_without_listen(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[[manager]]\nname = "m1"\naddress = "192.0.2.7"\nport = 8014\n')
    res = sephb("manager", "--config", str(cfg), timeout=20)
    assert res.returncode == 2
    assert "--listen" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_no_command_prints_help_and_exits_2() -> None:
    res = sephb()
    assert res.returncode == 2 and "COMMAND" in res.stdout


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    res = sephb("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"sephb {version('sephb')}"


def test_mutants_counts_kills_and_leaves_out_faults_of_the_other_reading() -> None:
    res = sephb("mutants", "-i", "seed", "--json", "--fault", "never-fails-over",
                "--fault", "sensors-before-logs", timeout=300)
    rows = {r["fault"]: r for r in json.loads(res.stdout)}
    # the seed reading never fails over: there the faulty client is the reference
    assert rows["never-fails-over"]["verdict"] == "n/a"
    assert rows["never-fails-over"]["killed"] is None
    killed = rows["sensors-before-logs"]
    assert killed["verdict"] == "NON-CONFORMANT" and killed["killed"] is True
    assert killed["requirement"] == "REQ-5-LOGS" and killed["steps"] >= 1
    assert res.returncode == 0, res.stderr
    # a fault that survives (it is the reference under this reading, were it judged)
    # would be exit 1; one that is only n/a is not a survivor
    text = sephb("mutants", "-i", "seed", "--fault", "never-fails-over")
    assert text.returncode == 0 and "killed 0/0 (and 1 not applicable" in text.stdout


def test_mutants_judges_faults_side_by_side_over_the_wire() -> None:
    # --jobs 4: two faults at once, each a `sephb conform` run of two cases at a time
    res = sephb("mutants", "-i", "seed", "--wire", "--json", "--jobs", "4",
                "--fault", "sensors-before-logs", "--fault", "stays-connected-in-pull",
                timeout=600)
    rows = json.loads(res.stdout)
    assert [(r["fault"], r["adapter"]) for r in rows] == [
        ("sensors-before-logs", "in-process"), ("stays-connected-in-pull", "in-process"),
        ("sensors-before-logs", "wire"), ("stays-connected-in-pull", "wire")]
    wire = {r["fault"]: r for r in rows if r["adapter"] == "wire"}
    assert wire["sensors-before-logs"]["requirement"] == "REQ-5-LOGS"
    for r in wire.values():
        assert r["killed"] is True and r["verdict"] == "NON-CONFORMANT", r
        assert r["replays"] == "3/3" and 1 <= r["steps"] <= 6
        assert 0 < r["seconds_to_kill"] <= r["seconds"]
    assert res.returncode == 0, res.stderr
