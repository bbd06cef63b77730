"""Grouping commits into fixes: a backport made by hand, with a PR of its own and no
`(cherry picked from commit …)` trailer, is still the same fix as main's original when it names
the same issue with the same subject (3.10's CVE-2020-10735 fix, #96501, is main's #96499)."""

from __future__ import annotations

from pathlib import Path

from stablectl.controller.selection import FixState
from stablectl.gitops.history import History
from stablectl.gitops.messages import change_subject
from tests.helpers import plan_line


def test_change_subject_drops_branch_prefix_and_pr_numbers() -> None:
    a = change_subject("gh-95778: CVE-2020-10735: Prevent DoS by very large int() (#96499)")
    b = change_subject("[3.10] gh-95778: CVE-2020-10735: Prevent DoS by very large int() (#96501)")
    c = change_subject(
        "[3.10] gh-95778:  CVE-2020-10735: prevent DoS by very large int() (GH-96499) (#96501)"
    )
    assert a == b == c == "gh-95778: cve-2020-10735: prevent dos by very large int()"


def test_a_hand_made_backport_joins_the_original(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "x = 1\n", "Lib/b.py": "y = 1\n"})
    h.branch("3.10", base)
    h.tag("v3.10.0", h.commit("3.10", "Python 3.10.0", {"README": "3.10.0\n"}))
    original = h.commit(
        "main",
        "gh-95778: Limit int digits (#96499)",
        {"Lib/a.py": "x = 2\n", "Misc/NEWS.d/next/Security/a.rst": "A\n"},
    )
    by_hand = h.commit(
        "3.10",
        "[3.10] gh-95778: Limit int digits (#96501)",
        {"Lib/a.py": "x = 2\n", "Misc/NEWS.d/next/Security/a.rst": "A\n"},
    )
    other = h.commit(  # same issue, another change: a fix of its own
        "main",
        "gh-95778: Document the limit (#96600)",
        {"Lib/b.py": "y = 2\n", "Misc/NEWS.d/next/Security/b.rst": "B\n"},
    )
    fixes = plan_line(tmp_path, h, "3.10.0", "3.10").series[0].fixes
    assert len(fixes) == 2
    joined = next(pf for pf in fixes if original in pf.candidate.fix.members)
    assert set(joined.candidate.fix.members) == {original, by_hand}
    assert joined.candidate.fix.key == original
    assert joined.chosen is not None and joined.chosen.source.sha == by_hand  # own branch first
    assert joined.chosen.source.kind == "own-backport" and joined.status == FixState.NEW_CLEAN
    assert any(pf.candidate.fix.members == [other] for pf in fixes)
