"""The specification review, the interpretation diff and the capacity estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sephb.conformance.cli import main
from sephb.model import capacity, diffing, review
from sephb.model.interpretations import get
from sephb.model.protocol import REQUIREMENTS, Mode

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def seed() -> Path:
    try:
        return review.find_seed()
    except Exception as exc:  # "not found" must fail, not error
        pytest.fail(f"{exc}")


def test_every_seed_sentence_is_extracted_and_matched(seed: Path) -> None:
    sents = review.sentences(seed.read_text())
    wheres = [s.where for s in sents]
    assert [w for w in wheres if "," not in w] == [f"step {i}" for i in range(1, 8)]
    assert sum(w.startswith("step") for w in wheres) == 14
    assert sum(w.startswith("heartbeat size") for w in wheres) == 2
    assert all(s.requirements for s in sents), [s for s in sents if not s.requirements]
    seed_reqs = {rid for rid, r in REQUIREMENTS.items() if r.origin == "seed"}
    assert seed_reqs <= {r for s in sents for r in s.requirements}


def test_every_seed_requirement_has_a_model_element_and_a_test(seed: Path) -> None:
    assert review.gaps(ROOT, seed) == []


def test_committed_review_is_fresh(seed: Path) -> None:
    committed = ROOT / "docs" / "spec-review.md"
    fresh = review.render(ROOT, seed)
    assert committed.is_file(), "run: sephb review -o docs/spec-review.md"
    assert committed.read_text() == fresh, "stale: run sephb review -o docs/spec-review.md"


def test_review_traces_rows_rules_and_ambiguities(seed: Path) -> None:
    text = review.render(ROOT, seed)
    assert "| A1-FAILOVER |" in text and "| A5-GUP-FALLBACK |" in text
    timeout = review.trace(next(iter(REQUIREMENTS)), ROOT)
    assert timeout.rows and timeout.status.startswith("ENCODED")
    only_seed = review.render(ROOT, seed, "seed")
    assert "(documented only)" not in only_seed


def test_mentioned_ids_expands_abbreviations() -> None:
    ids = review.mentioned_ids("REQ-4-PORT-8014/2967 and REQ-6")
    assert {"REQ-4-PORT-8014", "REQ-4-PORT-2967", "REQ-6-SENSORS"} <= ids
    assert "REQ-4-URLS" not in ids


def test_review_cli_check(tmp_path: Path, seed: Path) -> None:
    out = tmp_path / "r.md"
    assert main(["review", "--root", str(ROOT), "--seed-text", str(seed),
                              "-o", str(out), "--check"]) == 0
    assert out.read_text() == review.render(ROOT, seed)


# --- diff ---------------------------------------------------------------------------


def test_diff_shows_failover_and_gup_fallback() -> None:
    d = diffing.diff(get("seed"), get("documented"))
    only_doc = {r.requirement for r in d.rows_only_b}
    only_seed = {r.requirement for r in d.rows_only_a}
    assert {"REQ-2-FAILOVER", "REQ-4-GUP-FALLBACK"} <= only_doc
    assert "REQ-X-GUP-SKIP" in only_seed
    text = diffing.to_text(d)
    assert "CONNECTING--SESSION_TIMEOUT[next_manager]-->CONNECTING" in text
    assert "DOWNLOADING_GUP--DOWNLOAD_FAILED-->DOWNLOADING_MANAGER" in text
    pull = d.paths[0]
    # A path that fails over and one that falls back exist only under documented.
    assert any(any("next_manager" in n for n in p) for p in pull[2])
    assert any("DOWNLOADING_GUP--DOWNLOAD_FAILED-->DOWNLOADING_MANAGER" in p
               for p in pull[2])
    assert any("DOWNLOADING_GUP--DOWNLOAD_FAILED-->UPLOADING_LOGS" in p for p in pull[1])
    assert diffing.diff(get("seed"), get("seed")).differing_rows == ()


def test_diff_diagram_highlights_the_differing_rows(tmp_path: Path) -> None:
    out = tmp_path / "d.mmd"
    assert main(["diff", "--from", "seed", "--to", "documented",
                              "--format", "mermaid", "-o", str(out)]) == 0
    mmd = out.read_text()
    assert "(1) SESSION_TIMEOUT" in mmd  # the first differing row, numbered
    assert "DOWNLOAD_FAILED" in mmd and "%% only in seed" in mmd


# --- capacity -----------------------------------------------------------------------


def test_capacity_arithmetic() -> None:
    load = capacity.capacity(1_000, 300, "idle", Mode.PUSH, 2)
    assert load.checkins_per_s == pytest.approx(1_000 / 300)
    assert load.checkins_per_day_per_manager == pytest.approx(500 * 288)
    assert load.bytes_per_day_per_manager == pytest.approx((144_000 * 3072,
                                                           144_000 * 5120))
    assert load.held_connections_per_manager == 500
    assert capacity.capacity(1_000, mode=Mode.PULL).held_connections_per_manager == 0


def test_committed_capacity_doc_is_fresh() -> None:
    committed = ROOT / "docs" / "capacity.md"
    assert committed.read_text() == capacity.render_doc(), (
        "stale: run sephb capacity --examples -o docs/capacity.md")
    assert "| 1,000 |" in committed.read_text() and "| 100,000 |" in committed.read_text()


def test_capacity_cli_prints_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--clients", "100000", "--logging", "full",
                              "--mode", "push", "--managers", "4"]) == 0
    out = capsys.readouterr().out
    assert "assumptions:" in out and "held connections per manager:        25,000" in out


def test_review_outside_the_repository_leaves_out_only_the_tests(tmp_path: Path) -> None:
    # As from an installed package run in an empty directory: the seed and the
    # judges' source come from the package; tests cannot be traced, and the review
    # says so instead of calling every requirement UNTESTED.
    text = review.render(tmp_path)
    assert review.NO_TESTS in text and "UNTESTED" not in text
    inside = review.render(ROOT)
    assert text.count("CHECKED") == inside.count("CHECKED") > 0
    assert "ENCODED+CHECKED+TESTED" in inside and "ENCODED+CHECKED |" in text
    assert not any("no test exercises" in p for p in review.gaps(tmp_path))
