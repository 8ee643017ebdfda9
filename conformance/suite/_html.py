"""The HTML report of a result: one self-contained page, no JavaScript, inline SVG."""

from __future__ import annotations

import html
import re
from importlib import metadata
from typing import Final

from sephb.conformance.suite._facts import (
    CONFIDENCE,
    COVERAGE_FILE,
    JSON_FILE,
    JUNIT_FILE,
    MARKDOWN_FILE,
    Change,
    Reliability,
    _anchor,
    _cases,
    _duration,
    _expected_text,
    _Facts,
    _marked,
    _program,
    _reliability_text,
    _seed,
    _site,
    replay_file,
    trace_file,
)
from sephb.conformance.suite._seqdiagram import sequence_svg, xml_safe
from sephb.conformance.suite.results import (
    Status,
    Tally,
    replay_command,
    shrink_text,
)

# --- HTML ------------------------------------------------------------------------------


def _h(text: object) -> str:
    return html.escape(xml_safe(text), quote=True)


_SVG_PROLOG: Final = re.compile(r"\A.*?(?=<svg\b)", re.S)
_SVG_SIZE: Final = re.compile(r'(<svg\b[^>]*?)\s(?:width|height)="[^"]*"')
_XML_COMMENT: Final = re.compile(r"<!--.*?-->", re.S)


_VIEWBOX: Final = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"')


def _inline_svg(svg: bytes) -> tuple[str, int]:
    """Graphviz's SVG, fit for inlining, and its natural width in CSS pixels.

    No XML prolog or DOCTYPE (invalid inside HTML), no comments, and no fixed size,
    so that CSS scales it to the page by its viewBox (Graphviz's units are points).
    """
    text = _SVG_PROLOG.sub("", svg.decode())
    text = _XML_COMMENT.sub("", text)
    for _ in range(2):
        text = _SVG_SIZE.sub(r"\1", text, count=1)
    m = _VIEWBOX.search(text)
    width = round(float(m.group(1)) * 4 / 3) if m else 1600
    return text.replace("<svg", '<svg class="statechart"', 1), width


_CSS: Final = """
:root{--ink:#1f2d36;--muted:#62737f;--line:#dde3e8;--bg:#f4f6f8;--card:#fff;
--pass:#1b7f3b;--pass-bg:#e7f5ec;--pass-line:#a6d8b6;--fail:#c62828;--fail-bg:#fdecea;
--fail-line:#f2b8b5;--warn:#a65c00;--warn-bg:#fff3e0;--warn-line:#f5cc8f;--accent:#1d4e89}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.55 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
monospace;font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.wrap{max-width:1320px;margin:0 auto;padding:0 28px}
header.top{background:var(--card);border-bottom:1px solid var(--line)}
header.top .stripe{height:6px;background:var(--pass)}
header.top.fail .stripe{background:var(--fail)}
header.top .wrap{padding-top:20px;padding-bottom:18px}
.kicker{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:var(--muted)}
h1{margin:6px 0 10px;font-size:26px;line-height:1.25;display:flex;align-items:center;
gap:14px;flex-wrap:wrap}
h1 .subject{font-weight:600}
h1 code{font-size:21px}
.verdict{display:inline-block;padding:5px 14px;border-radius:6px;color:#fff;
background:var(--pass);font-size:16px;font-weight:700;letter-spacing:.05em}
.fail .verdict{background:var(--fail)}
.claim{margin:4px 0 0;padding:10px 14px;border-radius:6px;border:1px solid var(--line);
background:#fafbfc;color:var(--muted)}
.claim.earned{border-color:var(--pass-line);background:var(--pass-bg);color:var(--ink)}
.claim strong{color:var(--pass);font-size:15px}
nav.toc{margin-top:14px;display:flex;gap:18px;flex-wrap:wrap;font-size:13px}
main.wrap{padding-top:22px;padding-bottom:40px}
dl.facts{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:1px;margin:0;
background:var(--line);border:1px solid var(--line);border-radius:8px;overflow:hidden}
dl.facts div{background:var(--card);padding:10px 16px}
dl.facts dt{font-size:11px;letter-spacing:.06em;text-transform:uppercase;color:var(--muted)}
dl.facts dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:12px;margin:16px 0}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 16px;border-top:3px solid var(--line)}
.tile .n{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.tile .l{font-size:12px;color:var(--muted)}
.tile.good{border-top-color:var(--pass)}.tile.bad{border-top-color:var(--fail)}
.tile.bad .n{color:var(--fail)}.tile.warn{border-top-color:var(--warn)}
.tile.warn .n{color:var(--warn)}
section.card{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:18px 22px;margin:18px 0}
h2{margin:0 0 12px;font-size:18px}
h2 .count{color:var(--muted);font-weight:400}
h3{margin:0;font-size:16px}
p.lead{margin:-4px 0 12px;color:var(--muted)}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:11.5px;letter-spacing:.05em;text-transform:uppercase;
color:var(--muted);border-bottom:2px solid var(--line);padding:8px 10px;font-weight:600}
td{padding:8px 10px;border-bottom:1px solid var(--line);vertical-align:top}
tbody tr:last-child td{border-bottom:0}
td.id{white-space:nowrap;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.FAILED td:first-child{box-shadow:inset 3px 0 var(--fail)}
tr.NOT_EXERCISED td:first-child{box-shadow:inset 3px 0 var(--warn)}
.status{display:inline-block;min-width:104px;padding:2px 10px;border-radius:999px;
font-size:11.5px;font-weight:700;letter-spacing:.03em;text-align:center;border:1px solid}
.status.PASSED{color:var(--pass);background:var(--pass-bg);border-color:var(--pass-line)}
.status.FAILED{color:var(--fail);background:var(--fail-bg);border-color:var(--fail-line)}
.status.NOT_EXERCISED{color:var(--warn);background:var(--warn-bg);border-color:var(--warn-line)}
.status.SKIPPED,.status.NOT_REACHED{color:var(--muted);background:#f1f3f5;
border-color:var(--line)}
.reason{display:block;font-size:12px;color:var(--muted);margin-top:3px}
.error{margin:16px 0;padding:12px 16px;border:1px solid var(--fail-line);
border-left:4px solid var(--fail);border-radius:8px;background:var(--fail-bg);
overflow-wrap:anywhere}
table.move{width:auto;margin:6px 0 4px}table.move th{width:110px}
ol.program li small{display:block;color:var(--muted)}
.replay{margin:10px 0 0}.replay code{background:#f7f9fa;border:1px solid var(--line);
border-radius:4px;padding:2px 6px;overflow-wrap:anywhere}
.refs{display:block;font-size:12px;margin-top:3px}
figure{margin:0}
figure.diagram{border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;
background:#fff}
svg.statechart{display:block;width:100%;height:auto;min-width:900px}
input.zoom{position:absolute;opacity:0;pointer-events:none}
label.zoom{margin-left:auto;padding:2px 10px;border:1px solid var(--line);border-radius:6px;
cursor:pointer;color:var(--accent);background:#f7f9fa;user-select:none}
label.zoom .on,#zoom:checked+label.zoom .off{display:none}
#zoom:checked+label.zoom .on{display:inline}
#zoom:checked+label.zoom{background:#e6eef7;border-color:#9fb8d6}
#zoom:focus-visible+label.zoom{outline:2px solid var(--accent)}
.legend:has(#zoom:checked)+figure svg.statechart{width:var(--natural);max-width:none}
figure.seq{border:1px solid var(--line);border-radius:6px;overflow-x:auto;background:#fff}
figure.seq svg{display:block}
figcaption{font-size:12.5px;color:var(--muted);margin-top:8px}
.legend{display:flex;gap:22px;flex-wrap:wrap;font-size:12.5px;color:var(--muted);
margin:0 0 10px}
.legend{align-items:center}
.legend>span::before{content:"";display:inline-block;width:26px;height:0;margin-right:7px;
vertical-align:middle;border-top:2px solid #37474f}
.legend>.uncov::before{border-top:2px dashed #e53935}
ul.plain{margin:0;padding-left:18px}ul.plain li{margin:3px 0}
.uncovered li code{color:var(--fail)}
.ok{color:var(--pass);font-weight:600}
details{margin-top:12px}summary{cursor:pointer;color:var(--accent)}
details table{margin-top:8px}
.warnings li{margin:4px 0}
article.failure{border:1px solid var(--fail-line);border-left:4px solid var(--fail);
border-radius:8px;padding:16px 20px;margin:16px 0;background:#fff}
article.failure header{display:flex;justify-content:space-between;align-items:baseline;
gap:12px;flex-wrap:wrap}
.message{margin:10px 0;padding:10px 14px;background:var(--fail-bg);border-radius:6px;
color:#7f1d1d;overflow-wrap:anywhere}
.meta{color:var(--muted);font-size:13px}
h4{margin:12px 0 6px;font-size:12px;letter-spacing:.06em;text-transform:uppercase;
color:var(--muted)}
ol.steps{margin:0;padding:8px 12px 8px 44px;background:#f7f9fa;border:1px solid var(--line);
border-radius:6px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
monospace;font-size:12.5px}
ol.steps li{padding:1px 0;overflow-wrap:anywhere}
.files a{display:inline-block;margin:8px 10px 0 0;padding:4px 10px;
border:1px solid var(--line);border-radius:6px;background:#f7f9fa;font-size:13px}
footer{color:var(--muted);font-size:12px;padding:0 0 30px}
@media (max-width:1000px){dl.facts{grid-template-columns:repeat(2,minmax(0,1fr))}
.tiles{grid-template-columns:repeat(2,minmax(0,1fr))}}
@media print{body{background:#fff}section.card,article.failure{break-inside:avoid}}
"""


def _html(facts: _Facts) -> str:
    """The page: verdict, facts and counts, then the failures (a failed run opens on
    them), the baseline's changes, requirements, coverage and warnings."""
    res = facts.result
    rel = facts.reliability
    ok = res.conformant
    tally = facts.tally
    title = f"{facts.verdict}: {res.client} ({res.interpretation}) · sephb conformance"
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header class="top {"pass" if ok else "fail"}"><div class="stripe"></div>',
        '<div class="wrap"><div class="kicker">sephb · conformance report · SEP client '
        "heartbeat</div>",
        f'<h1><span class="verdict">{facts.verdict}</span>'
        f'<span class="subject">client <code>{_h(res.client)}</code></span></h1>',
        _html_claim(rel),
        '<nav class="toc">'
        f'<a href="#failures">Failures ({len(res.failures)})</a>'
        '<a href="#requirements">Requirements</a>'
        '<a href="#coverage">Transition coverage</a><a href="#warnings">Warnings</a>'
        f'<a href="{JUNIT_FILE}">JUnit XML</a><a href="{JSON_FILE}">result.json</a>'
        f'<a href="{MARKDOWN_FILE}">Markdown</a></nav>',
        "</div></header>",
        '<main class="wrap">',
    ]
    if res.error:
        out.append(f'<div class="error" id="error"><b>The client could not be tested.'
                   f"</b> {_h(res.error)}</div>")
    if res.inconclusive:
        out.append(f'<div class="error" id="inconclusive"><b>Timing cannot be '
                   f"trusted.</b> {_h(res.inconclusive)}</div>")
    facts_dl = [
        ("Client", f"<code>{_h(res.client)}</code>"), ("Adapter", _h(res.adapter)),
        ("Interpretation", _h(res.interpretation)), ("Profile", _h(res.profile)),
        ("Seed", _h(_seed(res.seed))), ("Cases", _h(_cases(res))),
        ("Steps", f"{res.steps:,} ({res.records:,} records)"),
        ("Duration", _h(_duration(res.duration_s))),
        *((_h(k.capitalize()), _h(v)) for k, v in res.settings.items()),
    ]
    out.append('<dl class="facts">' + "".join(
        f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts_dl) + "</dl>")
    out.append(f'<p class="replay">Run again: <code>{_h(replay_command(res))}</code></p>')
    reqs = tally.requirements
    tiles = [
        (str(reqs[Status.PASSED]), "requirements passed", "good"),
        (str(reqs[Status.FAILED]), "requirements failed",
         "bad" if reqs[Status.FAILED] else "good"),
        (str(reqs[Status.NOT_EXERCISED]), "requirements not exercised",
         "warn" if reqs[Status.NOT_EXERCISED] else "good"),
        (f"{reqs[Status.SKIPPED]} / {reqs[Status.NOT_REACHED]}",
         "requirements skipped / not reached", ""),
        (f"{tally.rows[Status.PASSED]}/{len(res.transitions)}", "transitions exercised",
         "good" if not facts.uncovered else "warn"),
    ]
    out.append('<div class="tiles">' + "".join(
        f'<div class="tile {cls}"><div class="n">{n}</div><div class="l">{label}</div>'
        "</div>" for n, label, cls in tiles) + "</div>")
    if res.failures:
        out.append(_html_failures(facts))
    if facts.changes is not None:
        out.append(_html_changes(facts.changes))
    out.append(_html_requirements(facts))
    out.append(_html_coverage(facts))
    out.append(_html_warnings(facts))
    if not res.failures:
        out.append(_html_failures(facts))
    try:
        version = metadata.version("sephb")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = "unknown version"
    out += ["</main>",
            f'<footer class="wrap">Written by sephb {_h(version)} from '
            f'<a href="{JSON_FILE}">{JSON_FILE}</a>. Self-contained: no scripts, no '
            "external resources.</footer>",
            "</body></html>"]
    return "\n".join(out) + "\n"


def _html_changes(changes: list[Change]) -> str:
    body = ('<ul class="plain">' + "".join(
        f'<li class="{"bad" if c.regression else ""}">{_h(c.text())}</li>'
        for c in changes) + "</ul>") if changes else '<p class="ok">None.</p>'
    return ('<section class="card" id="changes"><h2>Changes since the baseline '
            f'<span class="count">({len(changes)})</span></h2>{body}</section>')


def _html_claim(rel: Reliability) -> str:
    if rel.statement:
        return (f'<p class="claim earned"><strong>{_h(rel.statement)}</strong> · '
                f"{rel.cases:,} clean cases, no failure. Lower bound on the pass "
                f"probability: {rel.bound:.6f} (exact, {1 - CONFIDENCE:g}<sup>1/n</sup>); "
                f"rule of three 1 − 3/n = {rel.rule_of_three:.6f}.</p>")
    return f'<p class="claim">{_h(_reliability_text(rel))}</p>'


def _html_requirements(facts: _Facts) -> str:
    res = facts.result
    rows = []
    for req in res.requirements:
        nums = facts.failures_of.get(req.id, [])
        refs = ('<span class="refs">' + ", ".join(
            f'<a href="#failure-{n}">failure {n}</a>' for n in nums) + "</span>"
            if nums else "")
        why = (f'<span class="reason">{_h(req.reason)}</span>' if req.reason else "")
        rows.append(
            f'<tr id="req-{_anchor(req.id)}" class="req {req.status.value}">'
            f'<td class="id">{_h(req.id)}</td>'
            f'<td><span class="status {req.status.value}">{req.status.label}</span>'
            f"{refs}{why}</td>"
            f'<td class="num">{req.hits:,}</td><td>{_h(req.text)}</td></tr>')
    return ('<section class="card" id="requirements"><h2>Requirements '
            f'<span class="count">({len(res.requirements)})</span></h2>'
            '<p class="lead">Every rule of the interpretation, with how often a '
            "transition or property carrying it was exercised. Failed and not exercised "
            "fail the run; skipped (not observable through this adapter) and not "
            "reached (the run stopped at an earlier failure) do not.</p>"
            '<table class="requirements"><thead><tr><th>Requirement</th><th>Status</th>'
            '<th class="num">Hits</th><th>Text</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _html_coverage(facts: _Facts) -> str:
    res = facts.result
    parts = ['<section class="card" id="coverage"><h2>Transition coverage '
             f'<span class="count">({_h(Tally.line(facts.tally.rows))})</span></h2>']
    if facts.svg is not None:
        svg, natural = _inline_svg(facts.svg)
        # Fitted to the page by default, so that the whole machine is in view; the
        # checkbox (CSS only, no script) shows it at its natural size to read labels.
        parts += [
            '<div class="legend"><span>exercised (label: how often)</span>'
            '<span class="uncov">never exercised</span>'
            '<input type="checkbox" id="zoom" class="zoom">'
            '<label for="zoom" class="zoom"><span class="off">Show at actual size</span>'
            '<span class="on">Fit to the page</span></label></div>',
            f'<figure class="diagram" style="--natural:{natural}px">{svg}'
            f"<figcaption>State diagram of the interpretation "
            f"<b>{_h(res.interpretation)}</b>, drawn from the transition table. Each "
            "arrow reads EVENT [guard], the requirement that makes the move mandatory, "
            "and how often this run exercised it; states no exercised row reaches are "
            "dashed. The same drawing: "
            f'<a href="{COVERAGE_FILE}">{COVERAGE_FILE}</a>.</figcaption></figure>',
        ]
    elif facts.svg_problem:
        parts.append(f'<p class="meta">No diagram: {_h(facts.svg_problem)}</p>')
    if res.skipped:
        parts.append("<h4>Skipped: not observable in this adapter</h4>"
                     '<ul class="plain">' + "".join(
                         f"<li><code>{_h(n)}</code>: {_h(why)}</li>"
                         for n, why in res.skipped.items()) + "</ul>")
    parts.append("<h4>Never exercised</h4>")
    if facts.uncovered:
        req_of = {name: rid for name, rid, _ in facts.rows}
        parts.append('<ul class="plain uncovered">' + "".join(
            f"<li><code>{_h(u)}</code>"
            + (f' · <a href="#req-{_anchor(req_of[u])}">{_h(req_of[u])}</a>'
               if u in req_of else "") + "</li>" for u in facts.uncovered) + "</ul>")
    else:
        parts.append('<p class="ok">None.</p>' if res.failures or res.error else
                     '<p class="ok">None: every observable transition was '
                     "exercised.</p>")
    if facts.rows:
        parts.append(
            f"<details><summary>Every transition and its count ({len(facts.rows)})"
            '</summary><table class="transitions"><thead><tr><th>Transition</th>'
            '<th>Requirement</th><th class="num">Count</th></tr></thead><tbody>'
            + "".join(f"<tr><td><code>{_h(name)}</code></td><td>{_h(rid)}</td>"
                      f'<td class="num">{n:,}</td></tr>' for name, rid, n in facts.rows)
            + "</tbody></table></details>")
    parts.append("</section>")
    return "".join(parts)


def _html_warnings(facts: _Facts) -> str:
    warnings = [*facts.result.warnings, *facts.notes]
    body = ('<ul class="plain warnings">' + "".join(f"<li>{_h(w)}</li>" for w in warnings)
            + "</ul>") if warnings else '<p class="ok">None.</p>'
    return (f'<section class="card" id="warnings"><h2>Warnings <span class="count">'
            f"({len(warnings)})</span></h2>"
            '<p class="lead">Findings that are not violations, e.g. heartbeat sizes '
            f"outside the seed's typical range.</p>{body}</section>")


def _html_failures(facts: _Facts) -> str:
    res = facts.result
    parts = [f'<section class="card" id="failures"><h2>Failures <span class="count">'
             f"({len(res.failures)})</span></h2>"]
    if not res.failures:
        parts.append('<p class="ok">None.</p>')
    for n, f in enumerate(res.failures, 1):
        seed = f" · seed <code>{f.seed}</code>" if f.seed is not None else ""
        program = "".join(f"<li>{_h(words)}<small><code>{_h(step)}</code></small></li>"
                          for words, step in _program(res, f))
        move = [("Site", _h(_site(f))), ("Where", _h(_marked(f)))]
        expected = _expected_text(f)
        if expected is not None:
            move.append(("Expected", _h(expected)))
        parts.append(
            f'<article class="failure" id="failure-{n}"><header>'
            f'<h3>Failure {n} · <a href="#req-{_anchor(f.requirement)}">'
            f"{_h(f.requirement)}</a></h3>"
            f'<span class="meta">found by a {_h(f.found_by)} test case · '
            f"{len(f.steps)} steps · {len(f.trace)} trace records{seed}"
            f"{' · ' + _h(shrink_text(f)) if shrink_text(f) else ''}</span></header>"
            f'<div class="message">{_h(f.message)}</div>'
            '<table class="move">' + "".join(
                f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in move) + "</table>"
            f"<h4>What happened (shrunk)</h4>"
            f'<ol class="steps program">{program or "<li>(no steps)</li>"}</ol>'
            f"<h4>Sequence of the trace</h4>"
            f'<figure class="seq">{sequence_svg(f.trace, mark=f.record)}</figure>'
            f'<p class="replay">Run again: <code>{_h(replay_command(res))}</code></p>'
            f'<div class="files"><a href="{trace_file(n)}">Trace: {trace_file(n)}</a>'
            f'<a href="{replay_file(n)}">Replay: {replay_file(n)}</a>'
            f'<span class="meta">run it with <code>pytest {replay_file(n)}</code></span>'
            "</div></article>")
    parts.append("</section>")
    return "".join(parts)
