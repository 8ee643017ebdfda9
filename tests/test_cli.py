"""The `sephb` command line, run as a real process."""

from __future__ import annotations

import json
import os
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
    assert res.stdout.startswith("---\ntitle: ") and "\nstateDiagram-v2\n" in res.stdout
    res = sephb("diagram", "--view", "statechart", "--highlight", "0", "--format", "dot")
    assert res.returncode == 0, res.stderr
    assert "subgraph cluster_SESSION_PENDING" in res.stdout
    assert "Highlighted: path T00 of `sephb paths` (T00-T" in res.stdout
    assert "1 manager over 1 priority" in res.stdout
    assert "arrowtail=odot" in res.stdout  # a frame's arrow starts with a circle


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
    assert rows["never-fails-over"]["why"] == \
        "only a deviation under the documented reading"
    killed = rows["sensors-before-logs"]
    assert killed["verdict"] == "NON-CONFORMANT" and killed["killed"] is True
    assert killed["requirement"] == "REQ-5-LOGS" and killed["steps"] >= 1
    assert res.returncode == 0, res.stderr
    # a fault that survives (it is the reference under this reading, were it judged)
    # would be exit 1; one that is only n/a is not a survivor
    text = sephb("mutants", "-i", "seed", "--fault", "never-fails-over")
    assert text.returncode == 0 and "killed 0/0 (and 1 not applicable" in text.stdout


def test_a_fault_not_killed_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """An INCONCLUSIVE or ERROR row carries its run's reason, in the JSON row and
    on a line under the fault's (before: a bare verdict and a dash)."""
    from sephb.conformance.cli._suite import _mutant_row
    from sephb.conformance.suite.results import SuiteResult

    def result(inconclusive: str = "", error: str = "") -> SuiteResult:
        return SuiteResult("c", "wire", "seed", "ci", 0, 1, 1, 1.0, {}, [], [],
                           inconclusive=inconclusive, error=error)

    row = _mutant_row("checks-in-late", "wire", "REQ-7-PULL",
                      result(inconclusive="the machine was too busy"), 9.0, False)
    assert (row["verdict"], row["killed"]) == ("INCONCLUSIVE", False)
    assert row["why"] == "the machine was too busy"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("checks-in-late") and "INCONCLUSIVE" in lines[0]
    assert lines[1].split() == ["inconclusive:", "the", "machine", "was", "too", "busy"]
    row = _mutant_row("crashes-on-error", "wire", "REQ-X-ALIVE",
                      result(error="the client exited with status 3"), 2.0, True)
    assert row["verdict"] == "ERROR" and row["why"] == "the client exited with status 3"
    assert capsys.readouterr().out == ""  # quiet: the JSON rows only
    survived = _mutant_row("x", "wire", "REQ-7-PULL", result(), 2.0, True)
    assert survived["killed"] is False and survived["why"] is None


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


# --- output files: the format follows the extension; a path is checked up front -----


def _one_line_usage_error(res: subprocess.CompletedProcess[str], *words: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.mark.parametrize(("name", "start"), [
    ("x.png", b"\x89PNG"), ("x.svg", b"<?xml"), ("x.dot", b"digraph"),
    ("x.gv", b"digraph"), ("x.mmd", b"---\ntitle: "),
])
def test_diagram_format_follows_the_extension(tmp_path: Path, name: str,
                                              start: bytes) -> None:
    out = tmp_path / "new" / "dir" / name  # missing directories are created
    res = sephb("diagram", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes().lstrip().startswith(start)


def test_diagram_format_option_wins_over_the_extension(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    assert sephb("diagram", "--format", "svg", "-o", str(out)).returncode == 0
    assert out.read_bytes().lstrip().startswith(b"<?xml")


@pytest.mark.parametrize("args", [
    ["diagram", "-o", "x.jpg"], ["diff", "-o", "x.md"], ["diagram", "-o", "noextension"],
])
def test_an_extension_that_names_no_format_is_refused(args: list[str],
                                                     tmp_path: Path) -> None:
    args[-1] = str(tmp_path / args[-1])
    _one_line_usage_error(sephb(*args), "names no format", "--format")
    assert not list(tmp_path.iterdir())


#: Every command that writes a file or a directory, with the option that names it.
WRITERS = [
    ["diagram", "-o"], ["diagram", "--all", "-o"], ["review", "-o"], ["diff", "-o"],
    ["export", "promela", "-o"], ["capacity", "--clients", "10", "-o"],
    ["conform", "--report"], ["conform", "--junitxml"], ["conform", "--junit"],
    ["examples"],
]


@pytest.mark.parametrize("args", WRITERS, ids=" ".join)
def test_a_path_that_cannot_be_written_is_one_line(args: list[str]) -> None:
    _one_line_usage_error(sephb(*args, "/etc/passwd/x"), "/etc/passwd/x",
                          "/etc/passwd is not a directory")


@pytest.mark.parametrize("args", [w for w in WRITERS if w[-1] in ("-o", "--junitxml")
                                  and "--all" not in w], ids=" ".join)
def test_a_directory_where_a_file_goes_is_one_line(args: list[str],
                                                   tmp_path: Path) -> None:
    _one_line_usage_error(sephb(*args, str(tmp_path)), str(tmp_path), "directory")


def test_a_directory_without_permission_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    argv = [sys.executable, "-m", "sephb.conformance.cli", "diff", "-o",
            str(locked / "d.txt")]
    if os.geteuid() == 0:
        # Root writes anywhere by its capabilities: without them (util-linux's
        # setpriv), it meets the directory's mode bits as any owner would.
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    _one_line_usage_error(res, "permission denied")


def test_conform_refuses_a_report_it_cannot_write_before_the_run() -> None:
    res = sephb("conform", "--report", "/etc/passwd/x")
    _one_line_usage_error(res, "--report", "/etc/passwd/x")
    assert res.stdout == ""  # no verdict, no progress: nothing ran


def test_conform_json_is_the_result_json(tmp_path: Path) -> None:
    report = tmp_path / "new" / "report"
    res = sephb("conform", "--max-examples", "5", "--json", "--report", str(report),
                "--junitxml", str(tmp_path / "junit" / "j.xml"), timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc == json.loads((report / "result.json").read_bytes())
    assert doc["verdict"] == "CONFORMANT" and doc["exit_status"] == 0
    assert (tmp_path / "junit" / "j.xml").read_text().startswith("<?xml")


# --- the JSON of every reporting command --------------------------------------------


def test_capacity_json_has_the_figures() -> None:
    res = sephb("capacity", "--clients", "1000", "--logging", "full", "--mode", "push",
                "--json")
    doc = json.loads(res.stdout)
    assert doc["clients"] == 1000 and doc["logging"] == "full" and doc["mode"] == "push"
    assert doc["held_connections_per_manager"] == 1000 and doc["assumptions"]


def test_export_json_has_the_source_and_the_configuration(tmp_path: Path) -> None:
    doc = json.loads(sephb("export", "promela", "--json", "--managers", "3").stdout)
    assert doc["managers"] == 3 and "proctype" in doc["source"]
    out = tmp_path / "m.pml"
    doc = json.loads(sephb("export", "promela", "--json", "-o", str(out)).stdout)
    assert doc["source"] is None and doc["output"] == str(out) and out.is_file()


def test_review_json_traces_every_requirement() -> None:
    from sephb.model.protocol import REQUIREMENTS

    res = sephb("review", "--root", str(ROOT), "--json", "--check")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["gaps"] == []
    assert [r["id"] for r in doc["requirements"]] == list(REQUIREMENTS)
    assert all(r["status"].startswith("ENCODED") for r in doc["requirements"])
    assert all(s["requirements"] for s in doc["sentences"])


# --- diff: a summary by default, every row and path with --full, data with --json -----


def test_diff_is_a_summary_by_default() -> None:
    res = sephb("diff")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert len(lines) < 40, res.stdout
    assert "5 only in seed, 10 only in documented" in res.stdout
    assert "5 changed, 0 only in seed, 1 only in documented" in res.stdout
    table = next(i for i, line in enumerate(lines)
                 if line.split()[:2] == ["state", "event"])
    assert lines[table + 1].split()[:3] == ["CONNECTING", "SESSION_TIMEOUT", "IDLE"]
    assert any(line.split()[:2] == ["failover", "no"] for line in lines)
    assert "2 managers, 1 priority, GUP, pull: 7 only in seed, 96 only in documented" \
        in res.stdout


def test_diff_full_lists_every_row_and_path() -> None:
    full = sephb("diff", "--full").stdout
    assert len(full.splitlines()) > 300
    assert "CONNECTING--SESSION_TIMEOUT[next_manager]-->CONNECTING" in full


def test_diff_json_is_the_whole_diff(tmp_path: Path) -> None:
    doc = json.loads(sephb("diff", "--json").stdout)
    assert doc["from"]["name"] == "seed" and doc["to"]["name"] == "documented"
    assert len(doc["rows_only_from"]) == 5 and len(doc["rows_only_to"]) == 10
    assert [g["how"] for g in doc["by_state_event"]].count("changed") == 5
    assert sum(len(p["only_to"]) for p in doc["paths"]) == 96 + 210
    # -o FILE.json is the same JSON
    out = tmp_path / "d.json"
    assert sephb("diff", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == doc


# --- sephb examples ---------------------------------------------------------------------


def test_examples_writes_the_packaged_examples_and_what_to_do_next(tmp_path: Path
                                                                  ) -> None:
    dest = tmp_path / "a" / "ex"
    res = sephb("examples", str(dest))
    assert res.returncode == 0, res.stderr
    shipped = sorted(p.name for p in EXAMPLES.iterdir() if p.is_file())
    assert sorted(p.name for p in dest.iterdir()) == shipped
    assert "reference.har" in shipped and "managers.toml" in shipped
    for name in shipped:
        assert (dest / name).read_bytes() == (EXAMPLES / name).read_bytes()
    for command in (f"sephb manager --config {dest}/managers.toml",
                    f"sephb client --sylink {dest}/sylink-pull.xml --state-dir state/",
                    f"sephb validate {dest}/reference.har"):
        assert command in res.stdout
    # again: refused, in one line, and nothing is overwritten; --force replaces
    (dest / "managers.toml").write_text("# mine\n")
    _one_line_usage_error(sephb("examples", str(dest)), "managers.toml", "--force")
    assert (dest / "managers.toml").read_text() == "# mine\n"
    assert sephb("examples", str(dest), "--force").returncode == 0
    assert (dest / "managers.toml").read_bytes() == \
        (EXAMPLES / "managers.toml").read_bytes()


def test_the_examples_sylink_files_name_servers_the_fleet_file_serves() -> None:
    """`sephb manager --config managers.toml` serves every manager and GUP that
    sylink-pull.xml and sylink-push.xml name, so they work together as `sephb
    examples` says."""
    import tomllib

    from sephb.conformance.traces import sylink

    fleet = tomllib.loads((EXAMPLES / "managers.toml").read_text())
    served = {(m["address"], m.get("port", 8014)) for m in fleet["manager"]}
    pull = sylink.load(EXAMPLES / "sylink-pull.xml")
    assert {(s.address, s.port) for s in pull.servers} <= served
    push = sylink.load(EXAMPLES / "sylink-push.xml")
    assert {(s.address, s.port) for s in push.servers} <= served
    assert pull.gup is not None
    assert (pull.gup.address, pull.gup.port) == (fleet["gup"]["address"],
                                                 fleet["gup"]["port"])
