"""The mutation score of the reference client's core and store: ``make mutation``.

    .venv/bin/python tests/benchmarks/bench_mutation.py [--jobs 2] [--timeout 60]
                     [--only core|store] [--limit N] [--out out/mutation]

Theory of operation
-------------------
cosmic-ray's mutation *operators* make the mutants; this script judges them. For each
target file it lists every (operator, occurrence) cosmic-ray would (the operators that
take no arguments, as ``cosmic-ray init`` does by default) and asks cosmic-ray for the
mutated source of each. A mutant that does not compile, or whose module does not
import, is **incompetent** and leaves the score.

cosmic-ray mutates files in place, so two mutants cannot share a tree. The script makes
one copy of the checkout per worker (the files git tracks, in a temporary directory),
with the three packages made importable as ``sephb.*`` from the copy through
``PYTHONPATH`` (it comes before the venv's editable install on ``sys.path``); a worker
writes a mutant into its copy, runs the judges there, and puts the original back. The
mutated module's bytecode cache is deleted before every run, so that a mutant of the
same size written in the same second is never run from a stale ``.pyc``.

The judges, each run in its own process group (killed whole on timeout):

* ``core.py``: ``sephb conform -i seed --report DIR``, then ``-i documented``, each
  with its own report directory (profile ci, fixed seed). A mutant is killed if either
  reading kills it; the documented reading is skipped once the seed reading has failed
  a requirement, since it cannot change the mutant's class.
* ``store.py``: ``python -m pytest -q -x -p no:cacheprovider tests/test_store.py
  --hypothesis-seed 0`` (a fixed seed so that the score is the same run to run).

Every run gets an empty Hypothesis storage directory (no example database carried from
one mutant to the next). A mutant is then exactly one of: killed by a FAILED
requirement (or a failing test), killed otherwise (any other non-zero exit), survived,
timed out, or incompetent.

Survivors are compared with the reviewed list of equivalent mutants
(``tests/benchmarks/mutation/equivalent.toml``, see docs/mutation.md), keyed by file,
operator, the mutated line's text (stripped) and the mutant's index among those with
the same file, operator and line text -- a key that survives edits elsewhere in the
file, unlike cosmic-ray's occurrence number, which counts every earlier site.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import difflib
import enum
import hashlib
import importlib
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
EQUIVALENT_FILE: Final = Path(__file__).resolve().parent / "mutation" / "equivalent.toml"
CORE: Final = "conformance/client/core.py"
STORE: Final = "conformance/client/store.py"
#: In the order they run: the documented reading kills more (failover), so it goes
#: first and the seed reading runs only for what it did not kill.
READINGS: Final = ("documented", "seed")
PYTEST_ARGS: Final = ("-q", "-x", "-p", "no:cacheprovider", "tests/test_store.py",
                      "--hypothesis-seed", "0")
#: The three code folders and the import name each installs as (pyproject.toml).
PACKAGES: Final = {"model": "sephb.model", "diagrams": "sephb.diagrams",
                   "conformance": "sephb.conformance"}
#: Tests whose verdict depends on the machine's load: each SIGKILLs a child at a moment
#: it picks by watching the child's progress, and its last assertion needs the child
#: to have got far enough. Seen failing on unmutated-equivalent code while the other
#: worker loaded the machine, so a kill by them alone is confirmed by a second run.
FLAKY: Final = frozenset({"tests/test_store.py::test_sigkill_at_random_moments",
                          "tests/test_store.py::test_sigkill_while_taking_in_a_spool"})
TAIL_LINES: Final = 12
TRACEBACK: Final = "Traceback (most recent call last)"
#: Loaded in every judged process (from the copy's PYTHONPATH): the exception that
#: cosmic-ray's ExceptionReplacer writes into an ``except`` clause exists, so the
#: mutant's handler just never matches (as cosmic-ray's own workers arrange).
SITECUSTOMIZE: Final = '''\
import builtins


class CosmicRayTestingException(Exception):
    """Raised by nothing: an except clause naming it catches nothing."""


builtins.CosmicRayTestingException = CosmicRayTestingException  # type: ignore[attr-defined]
'''


class Kind(enum.Enum):
    """A mutant's class. Exactly one per mutant."""

    #: ``sephb conform`` exited 1 with a FAILED requirement in result.json, or
    #: pytest exited 1 with a failing test.
    KILLED_FAILED = "killed-failed"
    #: Any other non-zero exit: usage error, untestable client, a traceback of
    #: sephb itself, exit 1 with nothing failed (only "not exercised"), a test error.
    KILLED_OTHERWISE = "killed-otherwise"
    #: Exit 0 under every judge.
    SURVIVED = "survived"
    #: No verdict within the timeout (per run), and not killed by another run.
    TIMED_OUT = "timed-out"
    #: Does not compile or import: not counted in the score.
    INCOMPETENT = "incompetent"


#: The columns of the summary, in order.
KINDS: Final = (Kind.KILLED_FAILED, Kind.KILLED_OTHERWISE, Kind.SURVIVED, Kind.TIMED_OUT,
                Kind.INCOMPETENT)


# -- the equivalent list ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Key:
    """A mutant's identity that survives line shifts: file, operator, the source text of
    the line the mutation starts on (stripped), and which of the mutants with that
    file, operator and line text it is (0 for the first, in cosmic-ray's order)."""

    file: str
    operator: str
    line: str
    nth: int = 0

    def __str__(self) -> str:
        nth = f" [{self.nth}]" if self.nth else ""
        return f"{self.file} {self.operator}{nth}: {self.line}"


@dataclasses.dataclass(frozen=True)
class Equivalent:
    key: Key
    reason: str


def load_equivalent(path: Path = EQUIVALENT_FILE) -> list[Equivalent]:
    """The reviewed list; raises ValueError with the entry's number on a malformed
    entry, so that a bad edit fails loudly (tests/test_mutation_list.py)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"mutant"}
    if unknown:
        raise ValueError(f"{path.name}: unknown top-level keys {sorted(unknown)}; "
                         "expected only [[mutant]] tables")
    out: list[Equivalent] = []
    for i, entry in enumerate(data.get("mutant", []), 1):
        where = f"{path.name}: mutant {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        extra = set(entry) - {"file", "operator", "line", "nth", "reason"}
        if extra:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}")
        for field in ("file", "operator", "line", "reason"):
            value = entry.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}: {field!r} must be a non-empty string")
        nth = entry.get("nth", 0)
        if isinstance(nth, bool) or not isinstance(nth, int) or nth < 0:
            raise ValueError(f"{where}: 'nth' must be an integer >= 0, got {nth!r}")
        if entry["line"] != entry["line"].strip():
            raise ValueError(f"{where}: 'line' is the stripped source line")
        reason = entry["reason"]
        if "\n" in reason or reason.strip().upper().startswith("TODO"):
            raise ValueError(f"{where}: 'reason' must be one line a reviewer accepts")
        out.append(Equivalent(Key(entry["file"], entry["operator"], entry["line"], nth),
                              reason))
    dup = [k for k, n in Counter(e.key for e in out).items() if n > 1]
    if dup:
        raise ValueError(f"{path.name}: listed twice: {dup[0]}")
    return out


def toml_entry(key: Key, reason: str) -> str:
    """One ``[[mutant]]`` table (JSON strings are valid TOML basic strings)."""
    lines = ["[[mutant]]", f"file = {json.dumps(key.file)}",
             f"operator = {json.dumps(key.operator)}",
             f"line = {json.dumps(key.line, ensure_ascii=False)}"]
    if key.nth:
        lines.append(f"nth = {key.nth}")
    lines.append(f"reason = {json.dumps(reason, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


# -- making mutants -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutant:
    file: str
    operator: str
    #: cosmic-ray's occurrence: the index among this operator's sites in the file.
    occurrence: int
    line: int
    column: int
    key: Key
    diff: str
    #: The mutated module; None when cosmic-ray made no change (never expected).
    code: str | None
    #: The mutation changes only a function's parameter or return annotations, in a
    #: module that keeps them as strings (see :func:`annotation_only`).
    annotation_only: bool = False

    @property
    def name(self) -> str:
        op = self.operator.removeprefix("core/")
        return f"{Path(self.file).name}:{self.line} {op}#{self.occurrence}"

    @property
    def change(self) -> str:
        """The diff in one line: removed lines -> added lines, stripped."""
        old = [ln[1:].strip() for ln in self.diff.splitlines()
               if ln.startswith("-") and not ln.startswith("---")]
        new = [ln[1:].strip() for ln in self.diff.splitlines()
               if ln.startswith("+") and not ln.startswith("+++")]
        return f"{' / '.join(old) or '(nothing)'}  ->  {' / '.join(new) or '(removed)'}"


def _cosmic_ray() -> tuple[Any, Any, Any, Any]:
    """cosmic-ray's plugins, AST helpers and mutator (imported late: the list's test
    and ``--help`` work without the ``mutation`` extra)."""
    try:
        plugins = importlib.import_module("cosmic_ray.plugins")
        cr_ast = importlib.import_module("cosmic_ray.ast")
        mutating = importlib.import_module("cosmic_ray.mutating")
    except ImportError as e:
        raise SystemExit(f"cosmic-ray is not installed ({e}): run `make mutation`, or "
                         "`.venv/bin/pip install -e '.[mutation]'`") from None
    return plugins, cr_ast.get_ast, cr_ast.ast_nodes, mutating.mutate_code


def cosmic_ray_version() -> str:
    from importlib.metadata import version
    return version("cosmic-ray")


def _without_annotations(tree: ast.Module) -> str:
    """The module's AST with every parameter and return annotation removed."""
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
    return ast.dump(tree)


def _postponed(tree: ast.Module) -> bool:
    """Whether the module has ``from __future__ import annotations`` (PEP 563): its
    function annotations are then strings, never evaluated by Python itself."""
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
               and any(a.name == "annotations" for a in n.names) for n in tree.body)


def annotation_only(source: str, mutated: str) -> bool:
    """Whether ``mutated`` differs from ``source`` only in the parameter and return
    annotations of its functions, under PEP 563. Such a mutant is not a mutant of the
    running program: the code objects are the same but for the annotation strings,
    which nothing in the project evaluates (cosmic-ray skips ``|`` in variable
    annotations for the same reason, but not in a ``def``'s)."""
    original = ast.parse(source)
    try:
        changed = ast.parse(mutated)
    except SyntaxError:
        return False
    return (_postponed(original) and _postponed(changed)
            and ast.dump(original) != ast.dump(changed)
            and _without_annotations(original) == _without_annotations(changed))


def make_mutants(file: str, root: Path = ROOT) -> list[Mutant]:
    """Every mutant of ``file`` (relative to ``root``) that cosmic-ray's argument-free
    operators make, in cosmic-ray's order (operator, then position)."""
    plugins, get_ast, ast_nodes, mutate_code = _cosmic_ray()
    source = (root / file).read_text(encoding="utf-8")
    lines = source.split("\n")
    tree = get_ast(source)
    seen: Counter[tuple[str, str]] = Counter()
    out: list[Mutant] = []
    for name in plugins.operator_names():
        cls = plugins.get_operator(name)
        if cls.arguments():  # VariableReplacer/-Inserter: only with a configuration
            continue
        operator = cls()
        positions = [start for node in ast_nodes(tree)
                     for start, _ in operator.mutation_positions(node)]
        for occurrence, (line, column) in enumerate(positions):
            text = lines[line - 1].strip()
            nth = seen[(name, text)]
            seen[(name, text)] += 1
            code = mutate_code(source, operator, occurrence)
            diff = "" if code is None else "\n".join(difflib.unified_diff(
                source.split("\n"), code.split("\n"), f"a/{file}", f"b/{file}",
                lineterm=""))
            only = code is not None and annotation_only(source, code)
            out.append(Mutant(file, name, occurrence, line, column,
                              Key(file, name, text, nth), diff, code, only))
    return out


# -- running judges -------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One judge run on one mutant."""

    #: "seed", "documented" (sephb conform -i ...) or "pytest".
    judge: str
    #: The exit status; None when it timed out (the process group was killed).
    exit: int | None
    seconds: float
    #: "passed", "failed" (a FAILED requirement / failing test), "otherwise",
    #: "timeout", or "flaky" (failed only in a FLAKY test, passed when run again: not
    #: counted).
    verdict: str
    #: The FAILED requirements (result.json order, the first failure's first) or the
    #: failing tests.
    failed: list[str] = dataclasses.field(default_factory=list)
    stderr_tail: str = ""
    stdout_tail: str = ""
    traceback: bool = False
    #: The last exception line of stderr (``IndexError: list index out of range``).
    exception: str = ""
    note: str = ""


_EXCEPTION_RE: Final = re.compile(
    r"^[ |]*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Group)\b.*)$",
    re.MULTILINE)


def _exception(stderr: str) -> str:
    found = _EXCEPTION_RE.findall(stderr)
    return found[-1].strip()[:200] if found else ""


#: The judge processes running now, and a flag that stops new ones: on Ctrl-C or
#: SIGTERM every running judge's process group is killed and no judge starts again.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK: Final = threading.Lock()
_STOP: Final = threading.Event()


class Interrupted(Exception):
    """The run was stopped; a worker's judge did not start."""


def stop_all() -> None:
    with _RUNNING_LOCK:
        _STOP.set()
        for proc in _RUNNING:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def _tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-n:])


class Sandbox:
    """One worker's copy of the checkout: ``tree/`` holds the tracked files, ``path/``
    the ``sephb`` namespace pointing into ``tree/`` (the copy's PYTHONPATH)."""

    def __init__(self, base: Path, root: Path = ROOT) -> None:
        self.base = base
        self.tree = base / "tree"
        self.path = base / "path"
        self.scratch = base / "scratch"
        files = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            src = root / rel
            if not src.is_file():  # deleted in the working tree
                continue
            dst = self.tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        #: The files as copied, which every mutant of them is put back to.
        self.originals = {f: (self.tree / f).read_text(encoding="utf-8")
                          for f in (CORE, STORE)}
        (self.path / "sephb").mkdir(parents=True)
        for folder, name in PACKAGES.items():
            (self.path / "sephb" / name.split(".")[1]).symlink_to(self.tree / folder)
        (self.path / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        self.scratch.mkdir()
        self.bin = Path(sys.executable).parent
        self.env = {**os.environ, "PYTHONPATH": str(self.path),
                    "HYPOTHESIS_STORAGE_DIRECTORY": str(self.scratch / "hypothesis")}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def _drop_bytecode(self, file: str) -> None:
        rel = Path(file)
        for pyc in (self.tree / rel.parent / "__pycache__").glob(f"{rel.stem}.*.pyc"):
            pyc.unlink(missing_ok=True)

    def write(self, file: str, code: str) -> None:
        (self.tree / file).write_text(code, encoding="utf-8")
        self._drop_bytecode(file)

    def restore(self, file: str) -> None:
        (self.tree / file).write_text(self.originals[file], encoding="utf-8")
        self._drop_bytecode(file)

    def fresh(self, name: str) -> Path:
        """An empty scratch directory (the Hypothesis storage is reset too)."""
        for d in (self.scratch / name, self.scratch / "hypothesis"):
            shutil.rmtree(d, ignore_errors=True)
        (self.scratch / name).mkdir(parents=True)
        return self.scratch / name

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int | None, str, str,
                                                                 float]:
        """Run ``argv`` in the copy, in a new session; on timeout kill the whole
        process group. Output goes to files, so that nothing left holding a pipe can
        block us."""
        out_path, err_path = self.scratch / "stdout", self.scratch / "stderr"
        start = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            with _RUNNING_LOCK:
                if _STOP.is_set():
                    raise Interrupted
                proc = subprocess.Popen(list(argv), cwd=self.tree, env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True)
                _RUNNING.add(proc)
            try:
                code: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(proc)
        seconds = time.monotonic() - start
        return (code, out_path.read_text(errors="replace"),
                err_path.read_text(errors="replace"), seconds)

    def imports(self, module: str, timeout: float) -> tuple[bool, str]:
        """Whether ``module`` imports in the copy; the error's last lines if not."""
        code, _, err, _ = self.run([sys.executable, "-c", f"import {module}"], timeout)
        return code == 0, _tail(err, 4)

    # -- the two judges ----------------------------------------------------------------

    def conform(self, reading: str, timeout: float) -> Run:
        report = self.fresh(f"report-{reading}")
        code, out, err, secs = self.run(
            [str(self.bin / "sephb"), "conform", "-i", reading, "--report", str(report)],
            timeout)
        run = Run(reading, code, round(secs, 2), "otherwise", stderr_tail=_tail(err),
                  stdout_tail=_tail(out), traceback=TRACEBACK in err,
                  exception=_exception(err))
        if code is None:
            run.verdict = "timeout"
        elif code == 0:
            run.verdict = "passed"
        elif code == 1:
            failed, note = failed_requirements(report / "result.json")
            run.failed, run.note = failed, note
            run.verdict = "failed" if failed else "otherwise"
        return run

    def pytest(self, timeout: float) -> Run:
        self.fresh("pytest")
        code, out, err, secs = self.run(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS], timeout)
        run = Run("pytest", code, round(secs, 2), "otherwise", stderr_tail=_tail(err),
                  stdout_tail=_tail(out), traceback=TRACEBACK in err,
                  exception=_exception(err))
        failed = re.findall(r"^FAILED (\S+)", out, re.MULTILINE)
        if code is None:
            run.verdict = "timeout"
        elif code == 0:
            run.verdict = "passed"
        elif code == 1 and failed:
            run.verdict, run.failed = "failed", failed
        return run


def failed_requirements(path: Path) -> tuple[list[str], str]:
    """The FAILED requirements of a schema-2 ``result.json`` (the first failure's
    requirement first), and a note when the file is missing or of another schema."""
    from sephb.conformance.suite.results import SCHEMA, Status

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [], f"no readable result.json ({type(e).__name__})"
    if data.get("schema") != SCHEMA:
        return [], f"result.json schema {data.get('schema')!r}, expected {SCHEMA}"
    failed = [r["id"] for r in data.get("requirements", [])
              if r.get("status") == Status.FAILED.value]
    first = [f["requirement"] for f in data.get("failures", [])
             if f.get("requirement") in failed][:1]
    return first + [r for r in failed if r not in first], ""


# -- judging one mutant ---------------------------------------------------------------


@dataclasses.dataclass
class Result:
    mutant: Mutant
    kind: Kind
    runs: list[Run]
    seconds: float
    #: Why it is incompetent (the compiler's or the import's error).
    incompetent: str = ""
    #: Set after the run: the reviewed reason when it is listed equivalent.
    equivalent: str = ""

    @property
    def first_failed(self) -> str | None:
        for run in self.runs:
            if run.verdict == "failed":
                return run.failed[0]
        return None

    def as_json(self) -> dict[str, object]:
        m = self.mutant
        return {
            "file": m.file, "line": m.line, "column": m.column, "operator": m.operator,
            "occurrence": m.occurrence, "key": {"line": m.key.line, "nth": m.key.nth},
            "class": self.kind.value, "equivalent": self.equivalent or None,
            "first_failed": self.first_failed,
            "exit_codes": {r.judge: r.exit for r in self.runs},
            "runs": [dataclasses.asdict(r) for r in self.runs],
            "incompetent": self.incompetent or None, "seconds": round(self.seconds, 2),
            "change": m.change, "diff": m.diff,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        """A result as ``mutants.json`` saved it (``--rematch`` re-reads a run)."""
        key = Key(d["file"], d["operator"], d["key"]["line"], d["key"]["nth"])
        mutant = Mutant(d["file"], d["operator"], d["occurrence"], d["line"], d["column"],
                        key, d["diff"], None)
        return cls(mutant, Kind(d["class"]), [Run(**r) for r in d["runs"]], d["seconds"],
                   d["incompetent"] or "")


def module_of(file: str) -> str:
    folder, *rest = Path(file).with_suffix("").parts
    return ".".join([PACKAGES[folder], *rest])


def combine(runs: Iterable[Run]) -> Kind:
    """Killed by a FAILED requirement beats killed otherwise beats a timeout beats a
    pass: one judge's kill is the mutant's kill."""
    verdicts = {r.verdict for r in runs}
    for verdict, kind in (("failed", Kind.KILLED_FAILED),
                          ("otherwise", Kind.KILLED_OTHERWISE),
                          ("timeout", Kind.TIMED_OUT)):
        if verdict in verdicts:
            return kind
    return Kind.SURVIVED


def judge(box: Sandbox, mutant: Mutant, timeout: float) -> Result:
    start = time.monotonic()
    assert mutant.code is not None
    try:
        compile(mutant.code, mutant.file, "exec")
    except (SyntaxError, ValueError) as e:
        return Result(mutant, Kind.INCOMPETENT, [], 0.0, f"does not compile: {e}")
    box.write(mutant.file, mutant.code)
    try:
        runs: list[Run] = []
        if mutant.file == CORE:
            for reading in READINGS:
                runs.append(box.conform(reading, timeout))
                if runs[-1].verdict == "failed":
                    break
        else:
            runs += store_runs(box, timeout)
        kind = combine(runs)
        why = ""
        if kind is Kind.KILLED_OTHERWISE:
            ok, err = box.imports(module_of(mutant.file), timeout)
            if not ok:
                kind, why = Kind.INCOMPETENT, f"does not import: {err.splitlines()[-1:]}"
    finally:
        box.restore(mutant.file)
    return Result(mutant, kind, runs, time.monotonic() - start, why)


def store_runs(box: Sandbox, timeout: float) -> list[Run]:
    """The store's tests; a failure of FLAKY tests alone is run again, and counts only
    if the tests fail again."""
    first = box.pytest(timeout)
    if first.verdict != "failed" or not set(first.failed) <= FLAKY:
        return [first]
    again = box.pytest(timeout)
    again.judge = "pytest again"
    if again.verdict != "failed":
        first.verdict = "flaky"
        first.note = "failed only in a load-dependent test, passed when run again"
    return [first, again]


def baseline(box: Sandbox, files: Sequence[str], timeout: float) -> list[Run]:
    """The judges on the unmutated copy: every one must pass, or no kill means
    anything."""
    runs: list[Run] = []
    if CORE in files:
        runs += [box.conform(reading, timeout) for reading in READINGS]
    if STORE in files:
        runs.append(store_runs(box, timeout)[-1])
    return runs


def run_all(mutants: Sequence[Mutant], boxes: Sequence[Sandbox], timeout: float,
            progress: Callable[[int, Result], None]) -> list[Result]:
    free: queue.Queue[Sandbox] = queue.Queue()
    for box in boxes:
        free.put(box)

    def task(mutant: Mutant) -> Result:
        box = free.get()
        try:
            return judge(box, mutant, timeout)
        finally:
            free.put(box)

    results: list[Result] = []
    lock = threading.Lock()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(boxes))
    try:
        futures = [pool.submit(task, m) for m in mutants]
        for fut in concurrent.futures.as_completed(futures):
            result = fut.result()
            with lock:
                results.append(result)
                progress(len(results), result)
    except BaseException:
        stop_all()  # Ctrl-C or SIGTERM: kill the running judges, start no other
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    order = {id(m): i for i, m in enumerate(mutants)}
    return sorted(results, key=lambda r: order[id(r.mutant)])


# -- the report -----------------------------------------------------------------------


@dataclasses.dataclass
class Summary:
    results: list[Result]
    files: list[str]
    equivalent: list[Equivalent]
    seconds: float
    jobs: int
    timeout: float
    #: Listed entries whose mutant exists but did not survive, or exists no more.
    stale: list[tuple[Equivalent, str]] = dataclasses.field(default_factory=list)
    #: The annotation-only mutants, set aside unjudged (:func:`annotation_record`).
    set_aside: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def aside(self, file: str | None = None) -> int:
        return sum(1 for m in self.set_aside if file is None or m["file"] == file)

    def of(self, file: str | None = None) -> list[Result]:
        return [r for r in self.results if file is None or r.mutant.file == file]

    def counts(self, file: str | None = None) -> dict[str, int]:
        rs = self.of(file)
        c = Counter(r.kind for r in rs)
        out = {k.value: c[k] for k in KINDS}
        out["equivalent"] = sum(1 for r in rs if r.equivalent)
        out["survived-not-listed"] = c[Kind.SURVIVED] - out["equivalent"]
        out["all"] = len(rs)
        out["scored"] = len(rs) - out["equivalent"] - c[Kind.INCOMPETENT]
        return out

    def score(self, file: str | None = None) -> tuple[float, float]:
        c = self.counts(file)
        d = c["scored"] or 1
        return (c[Kind.KILLED_FAILED.value] / d,
                (c[Kind.KILLED_FAILED.value] + c[Kind.KILLED_OTHERWISE.value]) / d)

    @property
    def gaps(self) -> list[Result]:
        return [r for r in self.results if r.kind is Kind.SURVIVED and not r.equivalent]


def annotation_record(m: Mutant) -> dict[str, Any]:
    return {"file": m.file, "line": m.line, "operator": m.operator,
            "occurrence": m.occurrence, "change": m.change}


def match_equivalent(summary: Summary, complete: bool) -> None:
    """Mark listed survivors; note listed mutants that did not survive (the list is
    stale), and, when every mutant of a file ran, entries that match no mutant."""
    listed = {e.key: e for e in summary.equivalent if e.key.file in summary.files}
    found: set[Key] = set()
    for r in summary.results:
        entry = listed.get(r.mutant.key)
        if entry is None:
            continue
        found.add(entry.key)
        if r.kind is Kind.SURVIVED:
            r.equivalent = entry.reason
        else:
            summary.stale.append((entry, f"{r.mutant.name} was {r.kind.value}"))
    if complete:
        summary.stale += [(e, "no such mutant (the line or the operator changed)")
                          for k, e in listed.items() if k not in found]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(summary: Summary) -> list[str]:
    """The summary as a Markdown table."""
    head, *rows = _plain_rows(summary)
    return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1),
            *("| " + " | ".join(r) + " |" for r in rows)]


def print_summary(summary: Summary) -> None:
    widths = [max(len(x) for x in col) for col in zip(*_plain_rows(summary), strict=True)]
    for i, row in enumerate(_plain_rows(summary)):
        print("  ".join(x.ljust(w) if j == 0 else x.rjust(w)
                        for j, (x, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    c = summary.counts()
    s, a = summary.score()
    print(f"score: {c['killed-failed']} killed by a FAILED requirement or failing test / "
          f"{c['scored']} (all {c['all']} - {c['equivalent']} equivalent - "
          f"{c['incompetent']} incompetent) = {_pct(s)}; killed-any {_pct(a)}")
    per_file = ", ".join(f"{Path(f).name} {summary.aside(f)}" for f in summary.files)
    print(f"set aside, not judged: {summary.aside()} mutants that change only a def's "
          f"annotations ({per_file})")
    print(f"survivors not listed as equivalent: {len(summary.gaps)}; stale list entries: "
          f"{len(summary.stale)}; wall time {summary.seconds / 60:.1f} min, "
          f"{summary.jobs} workers")
    for r in summary.gaps:
        print(f"  GAP {r.mutant.name}: {r.mutant.change}")
    for e, why in summary.stale:
        print(f"  STALE {e.key}: {why}")


def _plain_rows(summary: Summary) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("file", "mutants", "killed-failed", "killed-otherwise",
                                    "survived", "equivalent", "timed-out", "incompetent",
                                    "score", "killed-any")]
    for file in [*summary.files, None]:
        c = summary.counts(file)
        s, a = summary.score(file)
        rows.append((Path(file).name if file else "all", *(str(c[k]) for k in (
            "all", "killed-failed", "killed-otherwise", "survived", "equivalent",
            "timed-out", "incompetent")), _pct(s), _pct(a)))
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(summary: Summary, meta: dict[str, str]) -> str:
    c = summary.counts()
    s, a = summary.score()
    out = ["# Mutation report", "",
           ", ".join(f"{k}: {v}" for k, v in meta.items()), "",
           *table(summary), "",
           f"**Score** (killed by a FAILED requirement, or a failing test for store.py, "
           f"over all mutants less equivalent and incompetent ones): "
           f"{c['killed-failed']} / {c['scored']} = **{_pct(s)}**. "
           f"Killed by anything: {c['killed-failed'] + c['killed-otherwise']} / "
           f"{c['scored']} = {_pct(a)}.", "",
           f"Set aside before judging: {summary.aside()} mutants that change only the "
           "parameter or return annotations of a `def` ("
           + ", ".join(f"{Path(f).name} {summary.aside(f)}" for f in summary.files)
           + "). Both files have `from __future__ import annotations`, so these are "
           "strings nothing evaluates: not mutants of the running program (cosmic-ray "
           "skips `|` in variable annotations likewise). `--with-annotations` judges "
           "them too; they are listed in `mutants.json` under `set_aside`.", ""]
    gaps = summary.gaps
    out += [f"## Survivors not listed as equivalent: {len(gaps)}", "",
            "What the suite (core.py) or the tests (store.py) do not see. Each diff is "
            "in `survivors.diff`; a reviewed equivalent one goes to "
            "`tests/benchmarks/mutation/equivalent.toml` (docs/mutation.md).", ""]
    for r in gaps:
        out += [f"### {r.mutant.name}", "", f"`{r.mutant.change}`", "", "```diff",
                r.mutant.diff, "```", ""]
    out += [f"## Stale entries of the equivalent list: {len(summary.stale)}", ""]
    out += [f"- `{_md(str(e.key))}`: {why}" for e, why in summary.stale] or ["None."]
    otherwise = [r for r in summary.results if r.kind is Kind.KILLED_OTHERWISE]
    out += ["", f"## Killed otherwise: {len(otherwise)}", ""]
    if otherwise:
        out += ["| mutant | change | exits | traceback | exception, or last output line |",
                "|---|---|---|---|---|"]
        for r in otherwise:
            run = next(x for x in r.runs if x.verdict == "otherwise")
            last = (run.stderr_tail or run.stdout_tail).splitlines()[-1:] or [""]
            what = run.exception or last[0][:120] or run.note
            exits = ", ".join(f"{x.judge} {x.exit}" for x in r.runs)
            out.append(f"| {r.mutant.name} | `{_md(r.mutant.change)}` | {exits} | "
                       f"{'yes' if run.traceback else 'no'} | {_md(what)} |")
    timed = [r for r in summary.results if r.kind is Kind.TIMED_OUT]
    out += ["", f"## Timed out: {len(timed)}", ""]
    out += [f"- {r.mutant.name}: `{_md(r.mutant.change)}`" for r in timed] or ["None."]
    killers = Counter(r.first_failed for r in summary.results
                      if r.kind is Kind.KILLED_FAILED)
    out += ["", "## What killed them (first FAILED requirement, or failing test)", "",
            "| requirement or test | mutants |", "|---|---:|"]
    out += [f"| {k} | {n} |" for k, n in killers.most_common()]
    eq = [r for r in summary.results if r.equivalent]
    out += ["", f"## Survivors listed as equivalent: {len(eq)}", "",
            "| mutant | change | reason |", "|---|---|---|"]
    out += [f"| {r.mutant.name} | `{_md(r.mutant.change)}` | {_md(r.equivalent)} |"
            for r in eq]
    inc = Counter(r.mutant.operator.split("_")[0] for r in summary.results
                  if r.kind is Kind.INCOMPETENT)
    out += ["", f"## Incompetent: {sum(inc.values())}", "",
            "Mutants that do not compile or import, by operator: "
            + (", ".join(f"{k.removeprefix('core/')} {n}" for k, n in inc.most_common())
               or "none") + ".", ""]
    return "\n".join(out)


def write_outputs(summary: Summary, out: Path, meta: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "counts": {f or "all": summary.counts(f)
                                    for f in [*summary.files, None]},
           "score": {f or "all": dict(zip(("killed_failed", "killed_any"),
                                          summary.score(f), strict=True))
                     for f in [*summary.files, None]},
           "stale": [{"key": dataclasses.asdict(e.key), "why": why}
                     for e, why in summary.stale],
           "set_aside": summary.set_aside,
           "mutants": [r.as_json() for r in summary.results]}
    (out / "mutants.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    (out / "survivors.diff").write_text("".join(
        f"# {r.mutant.name}{' (equivalent: ' + r.equivalent + ')' if r.equivalent else ''}"
        f"\n{r.mutant.diff}\n\n" for r in summary.results if r.kind is Kind.SURVIVED),
        encoding="utf-8")
    (out / "unlisted.toml").write_text(
        "# Survivors not in tests/benchmarks/mutation/equivalent.toml. Copy an entry\n"
        "# there only when the mutant is equivalent, with the reason in one line.\n\n"
        + "\n".join(toml_entry(r.mutant.key, "TODO: why it is equivalent")
                    for r in summary.gaps), encoding="utf-8")
    (out / "report.md").write_text(markdown(summary, meta), encoding="utf-8")


# -- resuming -------------------------------------------------------------------------


class Journal:
    """``progress.ndjson`` in ``--out``: every verdict as it comes, so that a run
    stopped part-way (Ctrl-C, a SIGTERM from elsewhere, a reboot) goes on where it
    stopped when started again on the same code with the same timeout. Its first line
    is the run's fingerprint; a journal of other code is started afresh. Removed when
    the run completes."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.done: dict[tuple[str, str, int], Result] = {}
        #: Wall and CPU seconds of the earlier sessions, and how many there were.
        self.wall = self.cpu = 0.0
        self.sessions = 0
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if lines and json.loads(lines[0]).get("fingerprint") == fingerprint:
            spent: dict[int, tuple[float, float]] = {}
            for line in lines[1:]:
                try:
                    d = json.loads(line)
                except ValueError:  # the last line, cut short by a kill
                    break
                r = Result.from_json(d["result"])
                self.done[(r.mutant.file, r.mutant.operator, r.mutant.occurrence)] = r
                spent[d["session"]] = (d["wall"], d["cpu"])
            self.sessions = max(spent, default=0)
            self.wall = sum(w for w, _ in spent.values())
            self.cpu = sum(c for _, c in spent.values())
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n",
                            encoding="utf-8")
        self.session = self.sessions + 1
        self._lock = threading.Lock()

    def reuse(self, mutant: Mutant) -> Result | None:
        """The earlier verdict on this very mutant (same site, same diff), if any."""
        r = self.done.get((mutant.file, mutant.operator, mutant.occurrence))
        if r is None or r.mutant.diff != mutant.diff:
            return None
        return Result(mutant, r.kind, r.runs, r.seconds, r.incompetent)

    def add(self, result: Result, wall: float, cpu: float) -> None:
        line = json.dumps({"session": self.session, "wall": round(wall, 1),
                           "cpu": round(cpu, 1), "result": result.as_json()})
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def fingerprint(timeout: float) -> str:
    """What the verdicts depend on: the commit, uncommitted changes, cosmic-ray's
    version, the timeout."""
    h = hashlib.sha256()
    for part in (_git("rev-parse", "HEAD"), _git("diff", "HEAD"), cosmic_ray_version(),
                 repr(timeout)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


# -- main -----------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    ap.add_argument("--jobs", type=int, default=2, help="workers, one copy each")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds per judge run (default 60; a normal run takes ~3)")
    ap.add_argument("--only", choices=("core", "store"), help="one file only")
    ap.add_argument("--limit", type=int, help="the first N mutants per file (a trial)")
    ap.add_argument("--match", help="only mutants whose name contains this")
    ap.add_argument("--with-annotations", action="store_true",
                    help="judge the mutants that change only a def's annotations too "
                         "(set aside by default: not mutants of the running program)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "mutation")
    ap.add_argument("--equivalent", type=Path, default=EQUIVALENT_FILE)
    ap.add_argument("--rematch", action="store_true",
                    help="run nothing: match the last run's mutants.json in --out against "
                         "the equivalent list again and rewrite the report")
    args = ap.parse_args(argv)
    # Stop cleanly on Ctrl-C and on SIGTERM, even when started in the background
    # (where a shell may have set SIGINT to be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    files = [f for f in (CORE, STORE) if args.only in (None, Path(f).stem)]
    equivalent = load_equivalent(args.equivalent)
    if args.rematch:
        return rematch(args.out, equivalent)

    started = time.monotonic()
    cpu_before = _children_cpu()
    mutants: list[Mutant] = []
    set_aside: list[Mutant] = []
    for file in files:
        made = make_mutants(file)
        aside = [] if args.with_annotations else [m for m in made if m.annotation_only]
        made = [m for m in made if args.with_annotations or not m.annotation_only]
        print(f"{file}: {len(made) + len(aside)} mutants made by cosmic-ray's operators; "
              f"{len(aside)} change only a def's annotations and are set aside",
              flush=True)
        set_aside += aside
        mutants += made[: args.limit]
    if args.match:
        mutants = [m for m in mutants if args.match in m.name]
    complete = args.limit is None and args.match is None

    journal = Journal(args.out / "progress.ndjson", fingerprint(args.timeout))
    reused = [r for r in map(journal.reuse, mutants) if r is not None]
    reused_ids = {id(r.mutant) for r in reused}
    todo = [m for m in mutants if id(m) not in reused_ids]
    if reused:
        print(f"resuming: {len(reused)} mutants judged in {journal.sessions} earlier "
              f"session(s) of this code; {len(todo)} to go", flush=True)

    with tempfile.TemporaryDirectory(prefix="sephb-mutation-") as tmp:
        boxes = [Sandbox(Path(tmp) / f"w{i}") for i in range(max(1, args.jobs))]
        for run in baseline(boxes[0], files, args.timeout):
            if run.verdict != "passed":
                print(f"baseline: {run.judge} did not pass on the unmutated code (exit "
                      f"{run.exit}):\n{run.stderr_tail or run.stdout_tail}",
                      file=sys.stderr)
                return 2
        print(f"baseline passes; judging {len(todo)} mutants with {len(boxes)} "
              f"workers", flush=True)

        def progress(done: int, r: Result) -> None:
            journal.add(r, time.monotonic() - started, _children_cpu() - cpu_before)
            what = r.first_failed or ", ".join(
                f"{x.judge} {x.exit}" for x in r.runs) or r.incompetent[:60]
            print(f"[{done + len(reused):4d}/{len(mutants)}] {r.seconds:5.1f}s "
                  f"{r.kind.value:16s} {r.mutant.name}  {what}", flush=True)

        judged = run_all(todo, boxes, args.timeout, progress)
    order = {id(m): i for i, m in enumerate(mutants)}
    results = sorted(reused + judged, key=lambda r: order[id(r.mutant)])

    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--",
                                                  *files) else ""
    wall = journal.wall + time.monotonic() - started
    cpu = journal.cpu + _children_cpu() - cpu_before
    summary = Summary(results, files, equivalent, wall, args.jobs, args.timeout,
                      set_aside=[annotation_record(m) for m in set_aside])
    match_equivalent(summary, complete)
    meta = {"commit": _git("rev-parse", "--short", "HEAD") + dirty,
            "tool": f"cosmic-ray {cosmic_ray_version()} operators",
            "workers": str(args.jobs), "timeout": f"{args.timeout:g} s per run",
            "wall": f"{wall / 60:.1f} min",
            "judges' CPU": f"{cpu / 60:.1f} min (user + sys)",
            "sessions": str(journal.session), "complete": str(complete).lower()}
    write_outputs(summary, args.out, meta)
    journal.close()
    print()
    print_summary(summary)
    print("judges' CPU time:", meta["judges' CPU"])
    print(f"report: {args.out / 'report.md'}")
    return 0


def _children_cpu() -> float:
    """CPU seconds of the judges so far (user + sys of every process waited for, with
    theirs): unlike the wall time, it does not grow when other work shares the
    machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def rematch(out: Path, equivalent: list[Equivalent]) -> int:
    """Re-read a run's ``mutants.json``, match it against the (edited) list, and
    write the outputs again: reviewing survivors needs no second run."""
    doc = json.loads((out / "mutants.json").read_text(encoding="utf-8"))
    meta: dict[str, str] = doc["meta"]
    results = [Result.from_json(d) for d in doc["mutants"]]
    files = [f for f in (CORE, STORE) if any(r.mutant.file == f for r in results)]
    minutes = float(meta["wall"].split()[0])
    summary = Summary(results, files, equivalent, minutes * 60,
                      int(meta["workers"]), float(meta["timeout"].split()[0]),
                      set_aside=doc.get("set_aside", []))
    match_equivalent(summary, meta.get("complete") == "true")
    write_outputs(summary, out, meta)
    print_summary(summary)
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
