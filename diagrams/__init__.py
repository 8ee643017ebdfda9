"""Drawings of the model: state diagrams (Graphviz DOT/SVG/PNG and Mermaid) generated
from the transition table, with check-in paths highlighted.

Start at :mod:`sephb.diagrams.statechart`. Importing this package is cheap:
``transitions`` and ``graphviz`` load only when something is drawn.
"""

from .statechart import (
    FORMATS,
    SUFFIXES,
    VIEWS,
    diff_diagram,
    filename,
    is_stale,
    render,
    write_all,
)

__all__ = ["FORMATS", "SUFFIXES", "VIEWS", "diff_diagram", "filename", "is_stale", "render",
           "write_all"]
