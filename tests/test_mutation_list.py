"""The reviewed list of equivalent mutants cannot rot silently.

``tests/benchmarks/mutation/equivalent.toml`` names the mutants of the client's core
and store that ``make mutation`` may let survive, each with its reason
(docs/mutation.md). When the code changes, an entry whose line is gone would match
nothing and hide nothing, but it would also stop saying anything true: this test fails
first. It is fast: it makes and runs no mutant (cosmic-ray is not needed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from bench_mutation import CORE, EQUIVALENT_FILE, ROOT, STORE, Equivalent, load_equivalent

#: What must be on a line for cosmic-ray's operator to have made a mutant there:
#: the symbol it replaces (binary, comparison and unary operators) or the construct.
_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "FloorDiv": "//", "Mod": "%",
           "Pow": "**", "RShift": ">>", "LShift": "<<", "BitOr": "|", "BitAnd": "&",
           "BitXor": "^"}
_COMPARISON = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">=",
               "Is": " is ", "IsNot": " is not "}
_UNARY = {"UAdd": "+", "USub": "-", "Invert": "~", "Not": "not "}
_CONSTRUCT = {
    "AddNot": r"\b(if|while|elif|assert)\b", "ReplaceTrueWithFalse": r"\bTrue\b",
    "ReplaceFalseWithTrue": r"\bFalse\b", "ReplaceAndWithOr": r"\band\b",
    "ReplaceOrWithAnd": r"\bor\b", "ReplaceBreakWithContinue": r"\bbreak\b",
    "ReplaceContinueWithBreak": r"\bcontinue\b", "ExceptionReplacer": r"\bexcept\b",
    "NumberReplacer": r"\d", "RemoveDecorator": r"^@", "ZeroIterationForLoop": r"\bfor\b",
}


def _needs(operator: str) -> str | None:
    """A regular expression the line must match for ``operator``; None if unknown."""
    name = operator.removeprefix("core/")
    family, _, rest = name.partition("_")
    source = rest.split("_")[0]
    table = {"ReplaceBinaryOperator": _BINARY, "ReplaceComparisonOperator": _COMPARISON,
             "ReplaceUnaryOperator": _UNARY}.get(family)
    if table is not None:
        if source == "Delete":  # ReplaceUnaryOperator_Delete_X removes a unary X
            source = rest.split("_")[1]
        return re.escape(table[source]) if source in table else None
    return _CONSTRUCT.get(name)


def _entries() -> list[Equivalent]:
    return load_equivalent(EQUIVALENT_FILE)


def test_the_list_is_well_formed() -> None:
    entries = _entries()
    assert entries, "the list is empty: make mutation has survivors to review"
    for e in entries:
        assert e.key.file in (CORE, STORE), f"{e.key}: not a file make mutation mutates"
        assert e.key.operator.startswith("core/"), f"{e.key}: not a cosmic-ray operator"
        assert _needs(e.key.operator) is not None, f"{e.key}: unknown operator"
        assert len(e.reason) <= 300, f"{e.key}: one short reason, please"


def test_every_entry_names_a_line_that_exists() -> None:
    lines = {f: [ln.strip() for ln in (ROOT / f).read_text(encoding="utf-8").splitlines()]
             for f in (CORE, STORE)}
    for e in _entries():
        assert e.key.line in lines[e.key.file], (
            f"{e.key}: no such line in {e.key.file} any more; run make mutation and "
            "review the survivors again (docs/mutation.md)")
        needs = _needs(e.key.operator)
        assert needs is not None
        assert re.search(needs, e.key.line), (
            f"{e.key}: the line has nothing {e.key.operator} could mutate")


@pytest.mark.parametrize(("text", "message"), [
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\n', "'reason'"),
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\nreason = "TODO"\n',
     "one line a reviewer accepts"),
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = " x"\nreason = "r"\n',
     "stripped"),
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\nreason = "r"\n'
     'nth = -1\n', "'nth'"),
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\nreason = "r"\n'
     'why = "r"\n', "unknown keys"),
    ('[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\nreason = "r"\n'
     '[[mutant]]\nfile = "a"\noperator = "core/AddNot"\nline = "x"\nreason = "s"\n',
     "listed twice"),
    ('[[mutants]]\nfile = "a"\n', "unknown top-level"),
])
def test_a_bad_entry_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "equivalent.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_equivalent(path)
