"""Reports of a conformance run: one self-contained HTML page, Markdown, JUnit XML,
and the files that reproduce each failure.

Theory of operation
-------------------
The suite (:mod:`sephb.conformance.suite`) fills a
:class:`~sephb.conformance.suite.results.SuiteResult`; everything here only reads it, so a
report can be written again from a saved ``result.json`` without running anything.
:func:`write_report` first works out, once, what every format says (:class:`_Facts`:
the verdict, the reliability claim, the uncovered rows, file names of the failures)
and each writer then only formats those facts -- the page, the Markdown and the JUnit
file cannot disagree with one another.

The page and the Markdown are Jinja2 templates (``templates/index.html`` and
``templates/report.md``, the page's style ``templates/report.css``). :func:`_view`
prepares what both show -- the failures with their site, record and shrunk program in
words, each requirement with its failures, the rows never exercised with their
requirement -- so that a template decides only how it looks, and
:mod:`~sephb.conformance.suite._html` and :mod:`~sephb.conformance.suite._markdown` add
what only their format has. The page renders offline and without JavaScript: CSS is
inline, the state diagram (drawn from the transition table by :mod:`sephb.diagrams`
with its coverage overlay) and the sequence diagrams
(:mod:`sephb.conformance.suite._seqdiagram`) are inline SVG, and every link is relative
to the output directory. Every string that came from a run (messages, steps, traces, a
foreign client's command line) is escaped for the format it goes into -- the page by
autoescaping, the Markdown by its filters -- and characters XML 1.0 cannot carry are
replaced.

The reliability claim is the zero-failure binomial bound: after ``n`` independent
cases without a failure, the probability of failure per case is at most
``p = 1 - (1 - C) ** (1 / n)`` with confidence ``C`` (the one-sided Clopper-Pearson
bound), which the rule of three approximates by ``3 / n`` at 95 %. The claim
"0.999 reliability at 95% confidence" is made when the exact bound reaches the
target, which takes 2,995 clean cases; the rule-of-three figure is shown next to it.
Only a conformant run has clean cases to count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sephb.conformance.suite._facts import (
    CONFIDENCE,
    COVERAGE_FILE,
    COVERAGE_FULL_FILE,
    FAILURES_DIR,
    HTML_FILE,
    JSON_FILE,
    JUNIT_FILE,
    MARKDOWN_FILE,
    RELIABILITY_TARGET,
    Change,
    Reliability,
    _cases,
    _changes,
    _duration,
    _expected_text,
    _Facts,
    _facts,
    _marked,
    _ndjson,
    _prefix,
    _program,
    _seed,
    _site,
    _traced,
    compare,
    min_clean_cases,
    reliability,
    replay_file,
    trace_file,
)
from sephb.conformance.suite._html import _html
from sephb.conformance.suite._junit import _junit_bytes
from sephb.conformance.suite._markdown import _markdown
from sephb.conformance.suite.results import (
    SuiteResult,
    Tally,
    dumps,
    replay_command,
    shrink_text,
)
from sephb.model.errors import UsageError

__all__ = [
    "CONFIDENCE",
    "RELIABILITY_TARGET",
    "Change",
    "Reliability",
    "compare",
    "min_clean_cases",
    "reliability",
    "write_junit",
    "write_report",
]


# --- writing ---------------------------------------------------------------------


def write_report(result: SuiteResult, outdir: Path, *,
                 baseline: SuiteResult | None = None) -> dict[str, Path]:
    """Write every report of ``result`` into ``outdir``; return them by relative name.

    Files: ``index.html``, ``report.md``, ``junit.xml``, ``result.json``,
    ``coverage.svg`` and ``coverage-full.svg`` (the statechart and the full view,
    when they could be drawn) and, per failure ``n``,
    ``failures/failure-<n>.ndjson`` and ``failures/test_replay_<n>.py``. Failure files
    (and the drawing) of an earlier report in the same directory are removed, so the
    directory never shows a failure this result does not have. ``baseline``: an
    earlier run's result, to report what changed per requirement.
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"report directory {str(outdir)!r}: {exc.strerror or exc}"
                         ) from None
    facts = dataclasses.replace(_facts(result), files=_prefix(outdir),
                                changes=_changes(baseline, result))
    written: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        path = outdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[name] = path

    fdir = outdir / FAILURES_DIR
    if fdir.is_dir():
        for old in [*fdir.glob("failure-*.ndjson"), *fdir.glob("test_replay_*.py")]:
            old.unlink()
    for i, failure in enumerate(result.failures, 1):
        put(trace_file(i), _ndjson(_traced(result, failure)))
        put(replay_file(i), failure.replay.encode())
    for name, svg in ((COVERAGE_FILE, facts.svg), (COVERAGE_FULL_FILE, facts.svg_full)):
        if svg is not None:
            put(name, svg)
        else:  # an older drawing must not pass for this run's
            (outdir / name).unlink(missing_ok=True)
    put(JSON_FILE, dumps(result))
    put(JUNIT_FILE, _junit_bytes(facts))
    view = _view(facts)
    put(MARKDOWN_FILE, _markdown(view).encode())
    put(HTML_FILE, _html(view).encode())
    return written


def write_junit(result: SuiteResult, path: Path, *, report_dir: Path | None = None,
                baseline: SuiteResult | None = None) -> Path:
    """Write the JUnit XML of ``result`` to ``path`` (the CLI's ``--junitxml FILE``).
    It names the failure files of ``report_dir`` when a report was written there
    (as paths relative to the working directory); otherwise each failure's trace is
    inline, so that the file stands alone."""
    facts = dataclasses.replace(
        _facts(result, draw=False),
        files=None if report_dir is None else _prefix(report_dir),
        changes=_changes(baseline, result))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_junit_bytes(facts))
    except OSError as exc:
        raise UsageError(f"--junitxml {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _view(facts: _Facts) -> dict[str, Any]:
    """What the page and the Markdown show, as their templates read it."""
    res = facts.result
    req_of = {name: rid for name, rid, _ in facts.rows}
    return {
        "res": res, "rel": facts.reliability, "tally": facts.tally,
        "verdict": facts.verdict, "seed": _seed(res.seed), "cases": _cases(res),
        "duration": _duration(res.duration_s), "replay": replay_command(res),
        "requirements_line": Tally.line(facts.tally.requirements),
        "rows_line": Tally.line(facts.tally.rows),
        "changes": facts.changes, "svg": facts.svg, "svg_problem": facts.svg_problem,
        "warnings": [*res.warnings, *facts.notes],
        "requirements": [(r, facts.failures_of.get(r.id, [])) for r in res.requirements],
        "uncovered": [(name, req_of.get(name)) for name in facts.uncovered],
        "rows": [(name, rid, n, res.row_status(name)) for name, rid, n in facts.rows],
        "failures": [{"n": n, "failure": f, "site": _site(f), "where": _marked(f),
                      "expected": _expected_text(f), "shrink": shrink_text(f),
                      "program": _program(res, f), "trace_file": trace_file(n),
                      "replay_file": replay_file(n)}
                     for n, f in enumerate(res.failures, 1)],
        "path_caption": facts.path_caption,
        "names": {"coverage": COVERAGE_FILE, "coverage_full": COVERAGE_FULL_FILE,
                  "json": JSON_FILE, "junit": JUNIT_FILE, "markdown": MARKDOWN_FILE},
    }
