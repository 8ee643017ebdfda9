"""The HTML report of a result: one self-contained page, no JavaScript, inline SVG.

The markup is ``templates/index.html``, its style ``templates/report.css``. Jinja2
escapes every value the template prints; only what this module marks safe is
inlined as it is: the style sheet, and the SVG drawn here (whose own text the
drawing code escapes). Characters XML 1.0 cannot carry are replaced before escaping.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata, resources
from typing import Any, Final

import jinja2
from markupsafe import Markup

from sephb.conformance.suite._facts import CONFIDENCE, _anchor, _reliability_text
from sephb.conformance.suite._seqdiagram import sequence_svg, xml_safe
from sephb.conformance.suite.results import Failure, Status

_SVG_PROLOG: Final = re.compile(r"\A.*?(?=<svg\b)", re.S)
_SVG_SIZE: Final = re.compile(r'(<svg\b[^>]*?)\s(?:width|height)="[^"]*"')
_XML_COMMENT: Final = re.compile(r"<!--.*?-->", re.S)
_VIEWBOX: Final = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"')


def _inline_svg(svg: bytes) -> tuple[Markup, int]:
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
    return Markup(text.replace("<svg", '<svg class="statechart"', 1)), width


def _sequence(f: Failure) -> Markup:
    return Markup(sequence_svg(f.trace, mark=f.record))


@functools.cache
def _environment() -> jinja2.Environment:
    # Once per process: reports are written often (every test of the suite does).
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sephb.conformance.suite", "templates"),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        finalize=lambda v: v if isinstance(v, Markup) else xml_safe(v))
    env.filters.update(num="{:,}".format, anchor=_anchor, sequence_svg=_sequence)
    env.globals.update(Status=Status, confidence=CONFIDENCE)
    return env


@functools.cache
def _css() -> Markup:
    # An asset, not a template: read as it is, never parsed for Jinja syntax.
    css = resources.files("sephb.conformance.suite") / "templates" / "report.css"
    return Markup(css.read_text(encoding="utf-8"))


def _version() -> str:
    try:
        return metadata.version("sephb")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown version"


def _html(view: dict[str, Any]) -> str:
    """The page: verdict, facts and counts, then the failures (a failed run opens on
    them), the baseline's changes, requirements, coverage and warnings."""
    statechart, natural = (None, None) if view["svg"] is None else _inline_svg(view["svg"])
    return _environment().get_template("index.html").render(
        view, css=_css(), statechart=statechart, natural=natural, version=_version(),
        reliability=_reliability_text(view["rel"]))
