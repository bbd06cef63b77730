"""Which fixes wait for which (controller/waiting.py): a follow-up waits for a fix that does not
apply yet whatever order selection lists them in, and a fix whose changed lines another
conflicting fix writes waits for that fix instead of being a conflict of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablectl.controller.plan import PlannedFix
from stablectl.controller.selection import FixState
from stablectl.gitops.history import History
from tests.helpers import plan_line


def _security(name: str) -> dict[str, str]:
    return {f"Misc/NEWS.d/next/Security/{name}.rst": f"{name}\n"}


def _by_key(fixes: list[PlannedFix]) -> dict[str, PlannedFix]:
    return {pf.candidate.fix.key: pf for pf in fixes}


def test_a_follow_up_listed_before_its_parent_still_waits_for_it(tmp_path: Path) -> None:
    """7e29398407 on 3.9.2: the follow-up's backport reached the own branch before the fix's
    did, so selection lists it first; it was planned before the fix's state was known and
    became a conflict of its own (here: a clean PR of a test for a fix the line lacks)."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n", "Lib/b.py": "0\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    rewrite = h.commit("main", "Rewrite a (#1)", {"Lib/a.py": "x\n"})
    fix = h.commit("main", "gh-5: Harden a (#6)", {"Lib/a.py": "y\n", **_security("a")})
    follow = h.commit("main", "gh-7: Test the hardening of gh-5 (#8)", {"Lib/b.py": "1\n"})
    h.backport(rewrite, "3.11")
    h.backport(follow, "3.11")  # the follow-up reached 3.11 first
    h.backport(fix, "3.11")
    plan = plan_line(tmp_path, h, "3.11.2", "3.11", "prerequisites: {max_commits: 0}")
    fixes = plan.series[0].fixes
    by_key = _by_key(fixes)
    assert by_key[fix].status == FixState.NEW_CONFLICT
    pf = by_key[follow]
    assert pf.candidate.fix.follows == fix
    assert pf.status == FixState.WAITING and pf.chosen is None
    assert pf.waits_for == f"waits for {fix[:10]} (new-conflict), which does not apply yet"
    keys = [x.candidate.fix.key for x in fixes]
    assert keys.index(fix) < keys.index(follow)  # planned, and listed, after its parent


def test_a_fix_changing_lines_a_conflicting_fix_writes_waits_for_it(tmp_path: Path) -> None:
    """b126196838: a fix (not a follow-up: another issue) changes lines that an earlier
    flagged fix adds, and that fix conflicts on the line: it waits for it, naming it and the
    lines, rather than handing a person a conflict whose resolution is the other fix."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "head\n0\ntail\n", "Lib/c.py": "c\n"})
    h.branch("3.11", base)
    # The line changed the same line its own way before its release: main's fix conflicts.
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"Lib/a.py": "head\n0-311\ntail\n"}))
    fix = h.commit(
        "main", "gh-5: Harden a (#6)", {"Lib/a.py": "head\nx\nguard = 1\ntail\n", **_security("a")}
    )
    later = h.commit(
        "main",
        "gh-9: Tighten the guard (#10)",
        {"Lib/a.py": "head\nx\nguard = 2\ntail\n", **_security("g")},
    )
    clean = h.commit("main", "gh-11: Harden c (#12)", {"Lib/c.py": "d\n", **_security("c")})
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    assert by_key[fix].status == FixState.NEW_CONFLICT
    pf = by_key[later]
    assert pf.candidate.fix.follows is None  # not a follow-up: it waits for what blame says
    assert pf.status == FixState.WAITING
    assert pf.waits_for.startswith(f"waits for {fix[:10]} (new-conflict: it writes the lines")
    assert "Lib/a.py:" in pf.waits_for
    assert by_key[clean].status == FixState.NEW_CLEAN  # a fix no other writes is unaffected


def test_a_documentation_follow_up_is_judged_not_held(tmp_path: Path) -> None:
    """gh-100001's "Remove doc typo" and 3.8.9's What's New entry follow fixes that conflict:
    they change documentation only, so they are not applicable (documentation only), not
    held waiting for a fix whose PR they could never join."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n", "Doc/a.rst": "a\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    h.commit("main", "Rewrite a (#1)", {"Lib/a.py": "x\n"})
    fix = h.commit("main", "gh-5: Harden a (#6)", {"Lib/a.py": "y\n", **_security("a")})
    doc = h.commit("main", "gh-5: Fix a doc typo (#7)", {"Doc/a.rst": "a!\n"})
    plan = plan_line(tmp_path, h, "3.11.2", "3.11", "prerequisites: {max_commits: 0}")
    by_key = _by_key(plan.series[0].fixes)
    assert by_key[fix].status == FixState.NEW_CONFLICT
    pf = by_key[doc]
    assert pf.candidate.fix.follows == fix
    assert pf.status == FixState.NOT_APPLICABLE and pf.verdict == "documentation-only"


@pytest.mark.parametrize("empty", [True, False])
def test_a_change_only_an_unmerged_fix_brings_is_not_applied_but_waits(
    tmp_path: Path, empty: bool
) -> None:
    """b7378d7728 on 3.6.8 ("Use InvalidURL instead of ValueError"): its code was on the
    plan's chain only because the pending 3.6 backport of its parent (c50d437e94) folded it
    in; v3.6.8 itself has no such check. Judged on the chain it was "applied" (its test
    conflicted), or would pick empty: had the parent's PR been skipped, the fix was lost. It
    waits for the parent."""
    h = History(tmp_path / "up.git")
    code = "def putrequest(url):\n    request = 'GET %s HTTP/1.1' % url\n    return request\n"
    tests = "def test_putrequest(self):\n    self.check_request('GET / HTTP/1.1')\n"
    base = h.commit("main", "base", {"Lib/http/client.py": code, "Lib/test/test_httplib.py": tests})
    h.branch("3.6", base)
    if not empty:  # the line's tests diverged: the follow-up's test conflicts there
        h.commit(
            "3.6",
            "[3.6] Reword a test",
            {"Lib/test/test_httplib.py": tests.replace("GET /", "GET /x")},
        )
    h.tag("v3.6.8", h.commit("3.6", "Python 3.6.8", {"README": "3.6.8\n"}))
    check = "    if bad_characters(url):\n        raise ValueError('control characters in url')\n"
    parent = h.commit(
        "main",
        "bpo-30458: Disallow control characters in URLs (#13154)",
        {
            "Lib/http/client.py": code.replace("    request =", check + "    request ="),
            **_security("u"),
        },
    )
    invalid = check.replace("ValueError", "InvalidURL")
    follow = h.commit(
        "main",
        "bpo-30458: Use InvalidURL instead of ValueError (#13044)",
        {
            "Lib/http/client.py": code.replace("    request =", invalid + "    request ="),
            **({} if empty else {"Lib/test/test_httplib.py": tests.replace("1.1'", "1.1', 1")}),
        },
    )
    # The line's own backport of the parent folded the follow-up's code in.
    folded = code.replace("    request =", invalid + "    request =")
    h.backport(parent, "3.6", adapt=lambda f: {**f, "Lib/http/client.py": folded})
    fixes = plan_line(tmp_path, h, "3.6.8", "3.6", "prerequisites: {max_commits: 0}").series[0]
    by_key = _by_key(fixes.fixes)
    assert by_key[parent].status == FixState.NEW_CLEAN
    pf = by_key[follow]
    assert pf.candidate.fix.follows == parent
    assert pf.status == FixState.WAITING and not pf.applied
    assert pf.waits_for == (
        f"its change comes with {parent[:10]} (new-clean), not on the line yet: waits for it"
    )
