"""The specification review: every behavioural sentence of the seed, traced to the
model elements that encode it, the checks that check it and the tests that exercise
it, plus the ambiguity register.

Theory of operation
-------------------
``docs/spec-review.md`` is generated, never written by hand:

1. **Sentences** are extracted from the seed text deterministically: the numbered
   steps 1-7 and their bullets (between ``HEARTBEAT PROCESS`` and ``HEARTBEAT SIZE``),
   and the sentences of the size paragraph.
2. Each sentence is **matched** to requirements by their own text
   (:data:`~sephb.model.protocol.REQUIREMENTS`): after normalising (case, spacing,
   parenthesised and bracketed asides, a final period), a requirement matches when
   its text contains the sentence or the sentence contains its text. The few
   sentences the requirement texts paraphrase are in :data:`HAND_MAP`; a test fails
   when a hand entry is unused or a sentence matches nothing.
3. For each requirement the **elements** are read from the model: rows whose
   requirement id it is, guards and parameters that name it, the static rules of
   :mod:`sephb.model.analysis` and the LTL properties of :mod:`sephb.model.promela`
   whose documentation names it, and the conformance oracle's methods
   (``conformance/traces/properties.py`` and ``conformance/suite/oracle.py``, read as
   *source text*: ``model`` must not import ``conformance``).
4. **Tests** are found by scanning ``tests/*.py`` for the id (this review's own test
   file is skipped, since it names ids only to check this module). The tests live in
   the project's repository, not in an installed package: where ``--root`` holds no
   ``tests/``, test traceability is *not known* (neither TESTED nor UNTESTED) and the
   review says so once; everything else is computed from the installed package (the
   seed text and the judges' source are package data).

Status is ``ENCODED`` (a row, guard, parameter or LTL property), ``+CHECKED`` (a
rule, property or oracle method), ``+TESTED`` (a test); ``MISSING-MODEL`` or
``UNTESTED`` are gaps.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .analysis import RULES
from .deadlines import DEADLINES, JUDGED_ELSEWHERE
from .errors import UsageError
from .interpretations import AMBIGUITIES, INTERPRETATIONS, Interpretation, get
from .promela import PROPERTIES
from .protocol import GUARDS, PARAMETERS, REQUIREMENTS, TABLE, Row

#: Where the seed is looked for, in order, when no path is given (after $SEPHB_SEED).
SEED_CANDIDATES: Final = (
    # The copy shipped with the package (package data), wherever the command runs.
    Path(__file__).resolve().parent / "seed" / "heartbeat-process.txt",
)
#: Sentences the requirement texts paraphrase rather than quote: the first words of
#: the normalised sentence -> requirement ids.
HAND_MAP: Final[dict[str, tuple[str, ...]]] = {
    # Step 2 itself: the connect is the move out of IDLE (step 1's row) and is bounded
    # by the session limit of its bullet.
    "sep client connects to sepm": ("REQ-1-PRIORITY", "REQ-2-TIMEOUT-30000"),
    "when there are no new client-side logs": ("REQ-SIZE-IDLE",),
    "when all client protection technologies": ("REQ-SIZE-MAX",),
}
#: Test files not scanned: they name requirement ids to test this module, not the
#: requirements.
SELF_TESTS: Final = frozenset({"test_review.py"})
_ID: Final = re.compile(r"REQ-[0-9X]+(?:-[A-Z0-9]+)*(?:/[A-Z0-9-]+)*")


@dataclass(frozen=True)
class Sentence:
    where: str
    text: str
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Trace:
    """What implements and checks one requirement."""

    id: str
    rows: tuple[Row, ...]
    guards: tuple[str, ...]
    parameters: tuple[str, ...]
    rules: tuple[str, ...]
    ltl: tuple[str, ...]
    oracle: tuple[str, ...]
    #: None: not known (no ``tests/`` under the root, as in an installed package).
    tests: tuple[str, ...] | None

    @property
    def encoded(self) -> bool:
        # An LTL property over the table encodes a requirement no single row holds
        # (REQ-X-ALIVE: the model's check-ins always end).
        return bool(self.rows or self.guards or self.parameters or self.ltl)

    @property
    def status(self) -> str:
        if not self.encoded:
            return "MISSING-MODEL" + ("" if self.tests or self.tests is None
                                      else "+UNTESTED")
        parts = ["ENCODED"]
        if self.rules or self.ltl or self.oracle:
            parts.append("CHECKED")
        if self.tests is not None:
            parts.append("TESTED" if self.tests else "UNTESTED")
        return "+".join(parts)


def find_seed(path: Path | None = None) -> Path:
    if path is not None:
        return path
    env = os.environ.get("SEPHB_SEED")
    for candidate in ([Path(env)] if env else []) + list(SEED_CANDIDATES):
        if candidate.is_file():
            return candidate
    raise UsageError("seed text not found; pass --seed-text FILE or set SEPHB_SEED (looked "
                     f"in {', '.join(str(p) for p in SEED_CANDIDATES)})")


def normalise(text: str) -> str:
    text = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().lower()


def extract_sentences(seed: str) -> list[tuple[str, str]]:
    """(where, sentence) for every behavioural sentence of the seed, in order."""
    try:
        process = seed.split("HEARTBEAT PROCESS", 1)[1].split("HEARTBEAT SIZE", 1)
        size = process[1].split("Statistics", 1)[0]
    except IndexError:
        raise UsageError("the seed has no HEARTBEAT PROCESS / HEARTBEAT SIZE "
                         "sections") from None
    out: list[tuple[str, str]] = []
    step, bullet = 0, 0
    for line in process[0].splitlines():
        line = line.strip()
        if m := re.match(r"(\d+)\.\s+(.*)", line):
            step, bullet = int(m.group(1)), 0
            out.append((f"step {step}", m.group(2).strip()))
        elif m := re.match(r"[•*-]\s+(.*)", line):
            bullet += 1
            out.append((f"step {step}, bullet {bullet}", m.group(1).strip()))
    text = " ".join(size.split())
    for i, s in enumerate(re.split(r"(?<=\.)\s+(?=[A-Z])", text), 1):
        if s:
            out.append((f"heartbeat size, sentence {i}", s))
    return out


def match(sentence: str) -> tuple[str, ...]:
    norm = normalise(sentence)
    for prefix, ids in HAND_MAP.items():
        if norm.startswith(prefix):
            return ids
    return tuple(
        rid for rid, r in REQUIREMENTS.items()
        if (t := normalise(r.text)) and (t in norm or norm in t)
    )


def sentences(seed: str) -> list[Sentence]:
    return [Sentence(w, s, match(s)) for w, s in extract_sentences(seed)]


def mentioned_ids(text: str) -> set[str]:
    """Requirement ids a docstring or comment names, with its abbreviations:
    ``REQ-4-PORT-8014/2967`` names both ports, ``REQ-5`` every id of step 5."""
    found: set[str] = set()
    for token in _ID.findall(text):
        head, *alts = token.split("/")
        stem = head.rsplit("-", 1)[0]
        names = [head] + [a if a.startswith("REQ-") else f"{stem}-{a}" for a in alts]
        for name in names:
            found |= {rid for rid in REQUIREMENTS
                      if rid == name or rid.startswith(name + "-")}
    return found


def _source_units(path: Path, prefix: str = "") -> tuple[tuple[str, str], ...]:
    """(function name, its source) for every function of a Python file, plus
    ``("", module-level text)`` for what lies outside functions."""
    return _parsed(path, prefix, path.stat().st_mtime_ns)


@functools.cache
def _parsed(path: Path, prefix: str, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    # Cached per file version: a review traces every requirement through every test
    # file, and parsing dominates otherwise.
    text = path.read_text()
    lines = text.splitlines()
    units: list[tuple[str, str]] = []
    inside: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            not prefix or node.name.startswith(prefix)
        ):
            span = range(node.lineno - 1, node.end_lineno or node.lineno)
            inside.update(span)
            units.append((node.name, "\n".join(lines[i] for i in span)))
    units.append(("", "\n".join(x for i, x in enumerate(lines) if i not in inside)))
    return tuple(units)


#: The conformance judges' source, read as text: the rules over records, the
#: suite's oracle that applies them live, and the state machine (which judges
#: REQ-X-ALIVE: a client that raises, hangs or spins).
JUDGES: Final = ("conformance/traces/properties.py", "conformance/suite/oracle.py",
                  "conformance/suite/_machine.py")


def _exact(rid: str, text: str) -> bool:
    return re.search(re.escape(rid) + r"(?![A-Z0-9-])", text) is not None


def trace(rid: str, root: Path, interp: Interpretation | None = None) -> Trace:
    rows = tuple(r for r in (interp.rows() if interp else TABLE)
                 if r.requirement == rid
                 or (r.guard is not None and GUARDS[r.guard].requirement == rid))
    tests: list[str] = []
    known = has_tests(root)
    for path in sorted((root / "tests").glob("test_*.py")) if known else ():
        if path.name in SELF_TESTS:
            continue
        for name, src in _source_units(path, "test"):
            if _exact(rid, src):
                tests.append(f"{path.name}::{name}" if name else path.name)
    oracle: list[str] = []
    for judge in JUDGES:
        path = _judge_path(root, judge)
        if path.is_file():
            oracle += [f"{path.name}:{n}" for n, src in _source_units(path)
                       if n and rid in mentioned_ids(src)]
    return Trace(
        rid, rows,
        tuple(g.value for g, spec in GUARDS.items() if spec.requirement == rid),
        tuple(p.name for p in PARAMETERS.values() if p.requirement == rid),
        tuple(f.__name__ for f in RULES if rid in mentioned_ids(f.__doc__ or "")),
        tuple(p.name for p in PROPERTIES if rid in p.requirements),
        tuple(oracle),
        tuple(dict.fromkeys(tests)) if known else None,
    )


def has_tests(root: Path) -> bool:
    """Whether ``root`` holds the project's tests (a checkout, not an install)."""
    return (root / "tests").is_dir()


#: What a review says once where it cannot trace tests.
NO_TESTS: Final = ("test traceability needs the project's repository (no tests/ "
                   "under the root; pass --root): the tests column is left out, the "
                   "rest is computed")


def _judge_path(root: Path, judge: str) -> Path:
    """A judge's source: under ``root`` in a checkout, else the installed package's
    (``conformance/...`` is installed as ``sephb/conformance/...``)."""
    path = root / judge
    if path.is_file():
        return path
    return Path(__file__).resolve().parent.parent / judge


def _cell(items: Sequence[str]) -> str:
    return "<br>".join(f"`{x}`" for x in items) if items else "—"


def _row_cell(rows: Sequence[Row]) -> str:
    def one(r: Row) -> str:
        only = ""
        if r.when is not None:
            names = [n for n, i in INTERPRETATIONS.items()
                     if i.switches[r.when[0]] is r.when[1]]
            only = f" ({', '.join(names)} only)"
        return f"`{r.name}`{only}"
    return "<br>".join(one(r) for r in rows) if rows else "—"


def render(root: Path, seed_path: Path | None = None,
           interpretation: str | None = None) -> str:
    """The review as Markdown; deterministic for a given tree."""
    interp = get(interpretation) if interpretation else None
    seed_file = find_seed(seed_path)
    sents = sentences(seed_file.read_text())
    traces = {rid: trace(rid, root, interp) for rid in REQUIREMENTS}
    scope = f"interpretation `{interp.name}`" if interp else "all interpretations"
    out = [
        "# Specification review",
        "",
        f"Generated by `sephb review` from the model's metadata ({scope}) and the seed "
        f"(`{seed_file.name}`); do not edit: a test fails when this file is stale.",
        "",
        "Status: `ENCODED` a row, guard, parameter or LTL property encodes it; "
        "`CHECKED` a static "
        "rule (`model/analysis.py`), an LTL property (`sephb export promela`) or a "
        "conformance judge's method (`conformance/traces/properties.py`, "
        "`conformance/suite/oracle.py`) checks it; "
        "`TESTED` a test names it. Every requirement is also covered by the structural "
        "and guard-partition analyses of the whole table.",
        *([] if has_tests(root) else ["", f"Tests: {NO_TESTS}."]),
        "",
        "## The seed, sentence by sentence",
        "",
        "| where | seed sentence | requirements | status |",
        "|---|---|---|---|",
    ]
    for s in sents:
        status = ", ".join(traces[r].status for r in s.requirements) or "UNMATCHED"
        out.append(f"| {s.where} | {s.text} | {_cell(s.requirements)} | {status} |")
    out += ["", "## Requirements", "",
            "| id | origin | text | transitions | guards, parameters | static rules "
            "| LTL | oracle | tests | status |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for rid, req in REQUIREMENTS.items():
        t = traces[rid]
        out.append(
            f"| `{rid}` | {req.origin} | {req.text} | {_row_cell(t.rows)} | "
            f"{_cell(t.guards + t.parameters)} | {_cell(t.rules)} | {_cell(t.ltl)} | "
            f"{_cell(t.oracle)} | {_cell(t.tests or ())} | {t.status} |"
        )
    out += ["", "## Deadlines (bounded liveness)", "",
            "What the table makes mandatory and by when (`model/deadlines.py`); each is "
            "judged in the suite, over the wire and by `sephb validate --data`, with "
            "the run's tolerance on top of its bound. A deadline still open when a "
            "trace ends is reported as pending.", "",
            "| deadline | requirement | must happen | bound under `seed` | bound under "
            "`documented` | traced to | judged by |",
            "|---|---|---|---|---|---|---|"]
    for d in (*DEADLINES, *JUDGED_ELSEWHERE):
        interval = PARAMETERS["HEARTBEAT_INTERVAL_S"].value * 1000
        bounds = [d.bound_text(get(n).timing, interval) for n in ("seed", "documented")]
        rid = f"`{d.requirement}`" if d.requirement else \
            "the requirement of the row the answer takes"
        judge = d.judged_by or "`Deadlines` (model/deadlines.py)"
        out.append(
            f"| `{d.id}` | {rid} | {d.text} | {bounds[0]} | {bounds[1]} | "
            f"{'; '.join(d.sources)} | {judge} |")
    out += ["", "## Ambiguity register", "",
            "| id | question | the seed's words | sources | switch | `seed` chooses "
            "| `documented` chooses | requirements |",
            "|---|---|---|---|---|---|---|---|"]
    for a in AMBIGUITIES:
        out.append(
            f"| {a.id} | {a.title} | {a.seed_words} | {a.sources} | "
            f"{f'`{a.switch.value}`' if a.switch else '— (data only)'} | "
            f"{a.seed_choice} | {a.documented_choice} | {_cell(a.requirements)} |"
        )
    return "\n".join(out) + "\n"


def gaps(root: Path, seed_path: Path | None = None) -> list[str]:
    """What the review finds missing: a seed sentence with no requirement, a seed
    requirement with no model element or no test, an unused hand-map entry."""
    sents = sentences(find_seed(seed_path).read_text())
    problems = [f"{s.where}: no requirement matches {s.text!r}"
                for s in sents if not s.requirements]
    norms = [normalise(s.text) for s in sents]
    problems += [f"HAND_MAP entry {k!r} matches no seed sentence"
                 for k in HAND_MAP if not any(n.startswith(k) for n in norms)]
    in_seed = {r for s in sents for r in s.requirements}
    for rid, req in REQUIREMENTS.items():
        if req.origin == "seed" and rid not in in_seed:
            problems.append(f"{rid}: a seed requirement that no seed sentence states")
        if req.origin != "seed" and rid not in in_seed:
            continue
        t = trace(rid, root)
        if not t.encoded:
            problems.append(f"{rid}: no transition, guard or parameter encodes it")
        if t.tests is not None and not t.tests:
            problems.append(f"{rid}: no test exercises it")
    return problems
