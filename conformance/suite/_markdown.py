"""The Markdown report of a result (``report.md``), from ``templates/report.md``.

Markdown has no escaping of its own to lean on: the filters here make any string a
run wrote safe for the place it goes -- a paragraph or table cell (``md``), an
inline code span (``code``; ``cell_code`` in a table cell), a fenced block
(``block``)."""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import jinja2

from sephb.conformance.suite._facts import _reliability_text
from sephb.conformance.suite._seqdiagram import sequence_mermaid, xml_safe
from sephb.conformance.suite.results import Failure, Status

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|#])")
_STATUS_MARK: Final = {Status.PASSED: "✅", Status.FAILED: "❌", Status.NOT_EXERCISED: "⚠️",
                       Status.SKIPPED: "⏭️", Status.NOT_REACHED: "⏸️"}


def _md(text: object) -> str:
    """Plain text for a Markdown paragraph or table cell: one line, specials escaped."""
    one_line = " ".join(xml_safe(text).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def _md_code(text: str) -> str:
    """An inline code span that survives backticks in ``text``."""
    text = " ".join(xml_safe(text).split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_cell_code(text: str) -> str:
    r"""An inline code span in a table cell: GitHub's tables split a row at every
    unescaped ``|``, code spans too, and read ``\|`` there as ``|``."""
    return _md_code(text).replace("|", "\\|")


def _md_block(text: str, lang: str = "") -> str:
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{lang}\n{xml_safe(text).rstrip()}\n{fence}"


def _mermaid(f: Failure) -> str:
    return sequence_mermaid(f.trace, mark=f.record)


@functools.cache
def _environment() -> jinja2.Environment:
    # Once per process: reports are written often (every test of the suite does).
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sephb.conformance.suite", "templates"),
        autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(md=_md, code=_md_code, cell_code=_md_cell_code, block=_md_block,
                       num="{:,}".format, mark=_STATUS_MARK.__getitem__,
                       sequence_mermaid=_mermaid)
    return env


def _markdown(view: dict[str, Any]) -> str:
    text = _environment().get_template("report.md").render(
        view, reliability=_reliability_text(view["rel"], markdown=True))
    return text.rstrip() + "\n"
