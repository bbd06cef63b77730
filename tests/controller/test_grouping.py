"""Grouping commits into fixes: a backport made by hand, with a PR of its own and no
`(cherry picked from commit …)` trailer, is still the same fix as main's original when it names
the same issue with the same subject (3.10's CVE-2020-10735 fix, #96501, is main's #96499)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stablectl.controller.selection import FixState
from stablectl.gitops.history import History, news
from stablectl.gitops.messages import change_subject
from tests.helpers import SECURITY_NEWS, Line, plan_line


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


def test_a_group_plans_the_same_in_every_process(tmp_path: Path) -> None:
    """A fix made of several flagged commits (one PR) lists its flags, and takes its place in
    the apply order, the same way whatever Python's string hashing (PYTHONHASHSEED): a plan
    is data downstreams diff, and its order decides what is picked onto what."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "a\n", "Lib/b.py": "b\n"})
    h.branch("3.10", base)
    h.tag("v3.10.2", h.commit("3.10", "Python 3.10.2", {"README": "3.10.2\n"}))
    for i in range(5):
        h.commit(
            "main",
            f"gh-70: Harden a, part {i} (#71)\n\nCVE-2024-0001",
            {"Lib/a.py": f"a{i}\n", **news("Security", 70 + i, f"Part {i}.")},
        )
    h.commit("main", "gh-80: Harden b (#81)", {"Lib/b.py": "b1\n", **news("Security", 80, "B.")})
    line = Line.of(h, tmp_path / "line")
    policy = line.write_policy(
        'name: "3.10.2", base: v3.10.2, sources: ["3.10", main], since: 2000-01-01',
        SECURITY_NEWS + "  - {name: cve, security: true, message: 'CVE-\\d{4}-\\d+'}\n",
    )
    seen = []
    for seed in ("0", "1", "2"):
        state = str(tmp_path / f"s{seed}")
        argv = ["--state-dir", state, "plan", "--policy", str(policy), "--json"]
        out = subprocess.run(
            [sys.executable, "-m", "stablectl", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        fixes = json.loads(out.stdout)["series"][0]["fixes"]
        seen.append([(f["key"], f["members"], f["flags"]) for f in fixes])
    assert all(s == seen[0] for s in seen), seen
    assert [len(members) for _key, members, _flags in seen[0]] == [5, 1]
