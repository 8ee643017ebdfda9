"""One command-line vocabulary: every parser of ``sephb`` -- built as
``conformance/cli/__init__.py`` builds it and walked through its subcommands, nested
ones (``export promela``) included -- and the pytest plugin's options.

The same spelling means the same thing everywhere (``--seed`` a random seed,
``--format`` an output format, ``--profile`` the suite's depth); every option says
what it is and its default; every command that reports has ``--json``; every path a
command writes is checked when the arguments are parsed; and a usage error is one
line with exit status 2, a renamed spelling's line naming the new one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from sephb.conformance import pytest_plugin
from sephb.conformance.cli import build_parser, main
from sephb.conformance.cli._common import OUTPUT_TYPES, SUITE_PROFILES, Renamed

#: Every command, nested ones by their words.
COMMANDS = {"model", "paths", "diagram", "manager", "client", "conform", "mutants",
            "validate", "review", "diff", "export", "export promela", "capacity",
            "examples", "monitor"}
#: The commands that report something a program may want to read: each has --json.
#: (diagram draws, examples copies files, manager and client run until stopped.)
REPORTING = {"model", "paths", "conform", "mutants", "validate", "review", "diff",
             "export promela", "capacity", "monitor"}
#: Spellings whose choices are the command's own: the output formats a command
#: writes differ (diagram has no text, diff no other), the meaning does not.
OWN_CHOICES = {"--format", "-f"}
#: Hidden options that are not a removed spelling: (command, option, why).
HIDDEN = {("client", "--volatile-logs"): "test only: a client that loses its spool"}
#: Options that name a path the command writes, and must be checked when parsed.
OUTPUTS = {"-o", "--output", "--report", "--junitxml", "--trace", "--state-dir"}
@dataclass(frozen=True)
class Option:
    command: str
    action: argparse.Action

    @property
    def hidden(self) -> bool:
        return self.action.help == argparse.SUPPRESS

    @property
    def takes_value(self) -> bool:
        return self.action.nargs != 0


def _commands(parser: argparse.ArgumentParser, words: str = ""
              ) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    """(command words, its parser, its one-line help) of every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                full = f"{words} {name}".strip()
                yield full, sub, helps.get(name)
                yield from _commands(sub, full)


COMMAND_PARSERS = {name: p for name, p, _ in _commands(build_parser())}


def _options() -> list[Option]:
    out = []
    for name, parser in COMMAND_PARSERS.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            out.append(Option(name, action))
    return out


OPTIONS = _options()
NAMED = [o for o in OPTIONS if o.action.option_strings]
VISIBLE = [o for o in NAMED if not o.hidden]


def _ids(options: list[Option]) -> list[str]:
    return [f"{o.command} {'/'.join(o.action.option_strings) or o.action.dest}"
            for o in options]


def test_the_walk_sees_every_command() -> None:
    assert set(COMMAND_PARSERS) == COMMANDS
    assert {name for name, _, help_ in _commands(build_parser()) if not help_} == set()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_renders(command: str) -> None:
    # argparse formats help texts with %: a stray one breaks --help, and only --help
    assert f"sephb {command}" in COMMAND_PARSERS[command].format_help()


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_every_option_says_what_it_is(option: Option) -> None:
    a = option.action
    if option.hidden:
        key = (option.command, a.option_strings[0])
        assert isinstance(a, Renamed) or key in HIDDEN, (
            f"{option.command} {a.option_strings}: hidden, but neither a renamed "
            "spelling nor a known test-only option")
        return
    assert a.help and a.help.strip(), f"{option.command} {a.option_strings}: no help"


@pytest.mark.parametrize("option", VISIBLE, ids=_ids(VISIBLE))
def test_an_option_with_a_default_says_it(option: Option) -> None:
    a = option.action
    # (`is`, not `in`: a default of 0 is a default, though 0 == False)
    unset = a.default is None or a.default is False or a.default == argparse.SUPPRESS
    has_default = ((not unset and not a.required and option.takes_value)
                   or isinstance(a, argparse.BooleanOptionalAction))
    if not has_default:
        return
    assert "default" in (a.help or ""), (
        f"{option.command} {a.option_strings}: default {a.default!r} not in its help")


def test_the_known_exceptions_are_still_needed() -> None:
    """Each exception above names an option that still breaks the rule: one that
    was fixed is taken off the list, so that the rule holds for it from then on."""
    by_key = {(o.command, o.action.option_strings[0]): o.action for o in NAMED}
    for key in HIDDEN:
        assert by_key[key].help == argparse.SUPPRESS, f"{key}: no longer hidden"


def _meaning(a: argparse.Action) -> tuple[Any, ...]:
    choices = tuple(sorted(a.choices)) if a.choices is not None else None
    # a file, a directory, or either as another option says: a path written
    kind = "written path" if a.type in OUTPUT_TYPES else a.type
    return (a.nargs != 0, kind, choices)


def test_one_spelling_one_meaning() -> None:
    """The same option string takes the same kind of value (the same type and
    choices) in every command, and a short flag always stands for the same long
    one."""
    seen: dict[str, dict[tuple[Any, ...], list[str]]] = defaultdict(
        lambda: defaultdict(list))
    short: dict[str, set[str]] = defaultdict(set)
    for o in VISIBLE:
        a = o.action
        longs = [s for s in a.option_strings if s.startswith("--")]
        for s in a.option_strings:
            meaning = _meaning(a)
            if s in OWN_CHOICES:
                meaning = meaning[:2]
            seen[s][meaning].append(o.command)
            if not s.startswith("--"):
                short[s].add(longs[0])
    differ = {s: dict(m) for s, m in seen.items() if len(m) > 1}
    assert not differ, f"one spelling, several meanings: {differ}"
    assert {s: ls for s, ls in short.items() if len(ls) > 1} == {}


def test_seed_is_a_random_seed_everywhere() -> None:
    seeds = [o for o in VISIBLE if "--seed" in o.action.option_strings]
    assert {o.command for o in seeds} == {"conform", "client"}
    for o in seeds:
        assert o.action.type is int and "random" in (o.action.help or ""), o.command
    review = [o for o in NAMED if o.command == "review"]
    assert any("--seed-text" in o.action.option_strings for o in review)


def test_format_is_an_output_format_and_input_format_an_input_one() -> None:
    formats = [o for o in VISIBLE if any(s.endswith("-format") or s == "--format"
                                         for s in o.action.option_strings)]
    kinds = {(o.command, o.action.option_strings[0]) for o in formats}
    assert kinds == {("diagram", "--format"), ("diff", "--format"),
                     ("validate", "--input-format")}
    for o in formats:
        word = "input format" if "--input-format" in o.action.option_strings else \
            "output format"
        assert (o.action.help or "").startswith(word), (o.command, o.action.help)


def test_profile_is_the_suites_depth_everywhere() -> None:
    from sephb.conformance.suite import PROFILES

    assert tuple(PROFILES) == SUITE_PROFILES
    for o in VISIBLE:
        if "--profile" in o.action.option_strings:
            assert tuple(o.action.choices or ()) == SUITE_PROFILES, o.command


@pytest.mark.parametrize("command", sorted(REPORTING))
def test_every_reporting_command_has_json(command: str) -> None:
    json_opts = [o.action for o in VISIBLE
                 if o.command == command and "--json" in o.action.option_strings]
    assert json_opts, f"{command}: no --json"
    assert json_opts[0].nargs == 0 and "machine-readable" in (json_opts[0].help or "")


def test_junitxml_is_pytests_spelling_and_junit_its_alias() -> None:
    junit = [o.action for o in VISIBLE if "--junitxml" in o.action.option_strings]
    assert [a.option_strings for a in junit] == [["--junitxml", "--junit"]]
    assert not [o for o in VISIBLE if "--junit" in o.action.option_strings
                and "--junitxml" not in o.action.option_strings]


def test_every_written_path_is_checked_when_parsed() -> None:
    outputs = [o for o in VISIBLE if OUTPUTS & set(o.action.option_strings)]
    outputs += [o for o in OPTIONS if o.command == "examples" and o.action.dest == "dir"]
    unchecked = [(o.command, o.action.option_strings[0] if o.action.option_strings
                  else o.action.dest) for o in outputs if o.action.type not in OUTPUT_TYPES]
    assert unchecked == []


# --- usage errors ------------------------------------------------------------------------


def _parse_error(argv: list[str], capsys: pytest.CaptureFixture[str],
                 parse: Any = None) -> str:
    """The one line a parse of ``argv`` fails with: by ``parse`` (default: the
    parser's, which runs nothing should the argument pass)."""
    with pytest.raises(SystemExit) as exc:
        (parse or build_parser().parse_args)(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, (argv, err)
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_option_is_one_line(command: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # main(), which says an unknown argument in its command's words (a missing
    # required argument may be the error said first: one line either way)
    line = _parse_error([*command.split(), "--no-such-option"], capsys, main)
    assert line.startswith(f"sephb {command}: error: ")


#: Options whose values argparse checks (a type or choices), with a value none takes.
CHECKED = [o for o in VISIBLE if o.takes_value and (
    o.action.choices is not None or o.action.type not in (None, str, Path))]


@pytest.mark.parametrize("option", CHECKED, ids=_ids(CHECKED))
def test_a_bad_value_is_one_line(option: Option,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = "/etc/passwd/x" if option.action.type in OUTPUT_TYPES else "no such value!"
    flag = option.action.option_strings[0]
    line = _parse_error([*option.command.split(), flag, bad], capsys)
    assert flag in line or "/".join(option.action.option_strings) in line, line


@pytest.mark.parametrize(("argv", "now"), [
    (["review", "--seed", "5"], "--seed-text FILE"),
    (["validate", "--format", "har", "x.har"], "--input-format"),
    (["validate", "x.ndjson", "--clients"], "--per-client"),
    (["capacity", "--clients", "10", "--profile", "full"], "--logging idle|full"),
])
def test_a_renamed_spelling_names_the_new_one(argv: list[str], now: str) -> None:
    res = subprocess.run([sys.executable, "-m", "sephb.conformance.cli", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and now in lines[0] and "Traceback" not in res.stderr


# --- the pytest plugin ----------------------------------------------------------------


class _Group:
    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.options.append((names, attrs))


class _Parser:
    def __init__(self) -> None:
        self.group = _Group()

    def getgroup(self, name: str, description: str = "") -> _Group:
        return self.group


def _plugin_options() -> dict[str, dict[str, Any]]:
    parser = _Parser()
    pytest_plugin.pytest_addoption(cast(pytest.Parser, parser))
    return {names[0]: attrs for names, attrs in parser.group.options}


def test_the_plugins_options_are_conforms_with_help_and_defaults() -> None:
    conform = {s: o.action for o in VISIBLE if o.command == "conform"
               for s in o.action.option_strings}
    for name, attrs in _plugin_options().items():
        assert name.startswith("--sephb-")
        twin = conform.get("--" + name.removeprefix("--sephb-"))
        assert twin is not None, f"{name}: no such option of sephb conform"
        assert attrs.get("help"), f"{name}: no help"
        if attrs.get("default") is not None:
            assert "default" in attrs["help"] and attrs["default"] == twin.default, name
        if twin.type is int:
            assert attrs.get("type") is int and "random" in attrs["help"], name


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--sephb-interpretation", "bogus", "expected one of documented, seed"),
    ("--sephb-profile", "weekly", "expected one of ci, nightly, certify"),
    ("--sephb-client", "no-such-fault", "expected 'reference' or a seeded fault"),
    ("--sephb-client-cmd", "my-client", "needs the placeholders {sylink}"),
    ("--sephb-report", "/etc/passwd/x", "/etc/passwd is not a directory"),
])
def test_a_bad_plugin_option_is_a_usage_error_at_start(
        option: str, value: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{option}={value}"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == pytest.ExitCode.USAGE_ERROR, res.stdout + res.stderr
    assert expected in res.stderr and "passed" not in res.stdout, res.stderr
    assert "Traceback" not in res.stdout + res.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_takes_an_abbreviated_option(command: str) -> None:
    # A prefix of an option is no option: new options cannot change old command lines.
    assert COMMAND_PARSERS[command].allow_abbrev is False


def test_an_abbreviated_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    line = _parse_error(["conform", "--max-ex", "3"], capsys, main)
    assert line.startswith("sephb conform: error: ") and "--max-ex" in line
