"""Follow-ups: later upstream commits naming a flagged fix (its commit, PR or issue) are flagged
by the rule `follow-up`, security when the fix is, ordered after it (CVE-2023-40217's fix,
gh-108310, and its two gh-108342 follow-ups that Debian carries)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablectl.controller.plan import PlannedFix
from stablectl.controller.selection import FixState
from stablectl.gitops.history import History
from stablectl.gitops.messages import references
from tests.helpers import plan_line


def test_references_name_other_changes_not_the_commits_own_prs() -> None:
    message = (
        "[3.11] gh-108342: Break ref cycle in SSLSocket._create() exc (GH-108344) (#108349)\n\n"
        "This test leak was introduced by the test added for the fix of GH-108310.\n"
        "Fix-up of 64f99350351b, see #1234 and bpo-44.\n"
        "(cherry picked from commit 64f99350351bc46e016b2286f36ba7cd669b79e3)\n"
    )
    assert references(message) == ("gh-108342", "gh-108310", "c-64f99350351b", "gh-1234", "bpo-44")
    revert = 'Revert "gh-1: x"\n\nThis reverts commit 0123456789abcdef0123.\n'
    assert references(revert) == ("gh-1",)


def _security(name: str) -> dict[str, str]:
    return {f"Misc/NEWS.d/next/Security/{name}.rst": f"{name}\n"}


def _by_key(fixes: list[PlannedFix]) -> dict[str, PlannedFix]:
    return {pf.candidate.fix.key: pf for pf in fixes}


def test_follow_ups_by_issue_pr_and_commit_join_the_flagged_fix(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/ssl.py": "a = 1\n", "Lib/test/t.py": "t = 1\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    early = h.commit(  # names the issue, but before the fix: not its follow-up
        "main", "gh-108310: Add a reproducer note (#108300)", {"Doc/ssl.rst": "x\n"}
    )
    fix = h.commit(
        "main",
        "gh-108310: Fix CVE-2023-40217: avoid the ssl pre-close flaw (#108315)",
        {"Lib/ssl.py": "a = 2\n", **_security("ssl")},
    )
    cycle = h.commit(
        "main",
        "gh-108342: Break ref cycle in SSLSocket._create() exc (#108344)\n\n"
        "This test leak was introduced by the test added for the fix of GH-108310.",
        {"Lib/ssl.py": "a = 3\n"},
    )
    windows = h.commit(
        "main",
        f"gh-900: Skip the preauth test on Windows (#901)\n\nFix-up of {fix[:12]}.",
        {"Lib/test/t.py": "t = 2\n"},
    )
    second = h.commit(  # names the follow-up's PR: a follow-up of a follow-up
        "main", "gh-950: Tidy after #108344 (#951)", {"Lib/ssl.py": "a = 4\n"}
    )
    unrelated = h.commit("main", "gh-1000: Unrelated (#1001)", {"Lib/other.py": "o\n"})
    fixes = plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes
    by_key = _by_key(fixes)
    assert set(by_key) == {fix, cycle, windows, second}
    assert early not in by_key and unrelated not in by_key
    for key, token in ((cycle, "gh-108310"), (windows, f"commit {fix[:10]}")):
        c = by_key[key].candidate
        assert c.fix.follows == fix and c.fix.security
        assert [h.rule for h in c.fix.flags] == ["follow-up"]
        assert f"follow-up of {fix[:10]}" in c.fix.flags[0].reason
        assert token in c.fix.flags[0].reason
    assert by_key[second].candidate.fix.follows == cycle
    assert "names gh-108344" in by_key[second].candidate.fix.flags[0].reason
    keys = [pf.candidate.fix.key for pf in fixes]
    assert keys.index(fix) < keys.index(cycle) < keys.index(windows) < keys.index(second)
    assert all(pf.status == FixState.NEW_CLEAN for pf in fixes)


def test_a_follow_up_backported_upstream_is_picked_from_the_own_branch(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/ssl.py": "a = 1\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    fix = h.commit("main", "gh-10: Fix a CVE (#11)", {"Lib/ssl.py": "a = 2\n", **_security("a")})
    h.commit(
        "3.11",
        f"[3.11] gh-10: Fix a CVE (GH-11) (#12)\n\n(cherry picked from commit {fix})",
        {"Lib/ssl.py": "a = 2\n", **_security("a")},
    )
    follow = h.commit("main", "gh-20: Fix the fix of gh-10 (#21)", {"Lib/ssl.py": "a = 3\n"})
    back = h.commit(
        "3.11",
        f"[3.11] gh-20: Fix the fix of gh-10 (GH-21) (#22)\n\n(cherry picked from commit {follow})",
        {"Lib/ssl.py": "a = 3\n"},
    )
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    pf = by_key[follow]
    assert pf.candidate.fix.follows == fix and set(pf.candidate.fix.members) == {follow, back}
    assert pf.chosen is not None and pf.chosen.source.sha == back


@pytest.mark.parametrize("many", [8, 9])
def test_an_umbrella_issue_is_not_followed(tmp_path: Path, many: int) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    fix = h.commit("main", "gh-5: Harden a (#6)", {"Lib/a.py": "1\n", **_security("a")})
    later = [
        h.commit("main", f"gh-{100 + i}: Work item {i} of gh-5 (#{200 + i})", {f"L/{i}": "x\n"})
        for i in range(many)
    ]
    by_pr = h.commit("main", "gh-7: Fix a regression of #6 (#8)", {"Lib/a.py": "2\n"})
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    followed = {k for k, pf in by_key.items() if pf.candidate.fix.follows == fix}
    # Up to max_per_fix (8) later changes naming the issue are its follow-ups; past it, the
    # issue is an umbrella and only the commit naming the PR follows.
    assert followed == ({*later, by_pr} if many <= 8 else {by_pr})


def test_a_follow_up_of_a_fix_the_line_does_not_take_is_not_applicable(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n", "Lib/b.py": "0\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    fix = h.commit("main", "gh-5: Harden a (#6)", {"Lib/a.py": "1\n", **_security("a")})
    follow = h.commit("main", "gh-7: Test the hardening of gh-5 (#8)", {"Lib/b.py": "1\n"})
    h.commit(
        "main",
        f'Revert "gh-5: Harden a (#6)" (#9)\n\nThis reverts commit {fix}.',
        {"Lib/a.py": "0\n"},
    )
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    assert by_key[fix].status == FixState.REVERTED
    pf = by_key[follow]
    assert pf.candidate.fix.follows == fix and pf.status == FixState.NOT_APPLICABLE
    assert pf.not_applicable.startswith(f"a follow-up of {fix[:10]}, and it is reverted")


def test_a_follow_up_of_a_conflicting_fix_waits_for_it(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n", "Lib/b.py": "0\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    h.commit("main", "Rewrite a (#1)", {"Lib/a.py": "x\n"})  # 3.11 never gets this
    fix = h.commit("main", "gh-5: Harden a (#6)", {"Lib/a.py": "y\n", **_security("a")})
    follow = h.commit("main", "gh-7: Test the hardening of gh-5 (#8)", {"Lib/b.py": "1\n"})
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    assert by_key[fix].status == FixState.NEW_CONFLICT
    pf = by_key[follow]
    # Its own state, not "not applicable": it is planned once the fix is resolved and merged.
    assert pf.status == FixState.WAITING and pf.chosen is None and not pf.not_applicable
    assert pf.waits_for == f"waits for {fix[:10]} (new-conflict), which does not apply yet"


def test_a_follow_up_of_a_not_applicable_fix_is_judged_on_its_own_change(tmp_path: Path) -> None:
    """ "bpo-44394: Ensure libexpat is linked against libm" follows a bundled-expat update a
    Debian line does not build, but changes setup.py: its verdict is its own, never the
    fix's. One that changes only the absent code is not applicable with its own evidence."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "0\n", "setup.py": "libs = []\n"})
    h.branch("3.11", base)
    h.tag("v3.11.2", h.commit("3.11", "Python 3.11.2", {"README": "3.11.2\n"}))
    h.commit("main", "Add the new module (#1)", {"Lib/new.py": "x = 0\n"})
    fix = h.commit("main", "gh-5: Harden new (#6)", {"Lib/new.py": "x = 1\n", **_security("a")})
    setup = h.commit("main", "gh-5: Link new against libm (#7)", {"setup.py": "libs = ['m']\n"})
    tests = h.commit("main", "gh-5: Refactor new's code (#8)", {"Lib/new.py": "x = 2\n"})
    by_key = _by_key(plan_line(tmp_path, h, "3.11.2", "3.11").series[0].fixes)
    assert by_key[fix].status == FixState.NOT_APPLICABLE
    pf = by_key[setup]
    assert pf.candidate.fix.follows == fix and pf.status == FixState.NEW_CLEAN
    assert pf.info.startswith("it follows up a fix judged not applicable to the line")
    own = by_key[tests]
    assert own.status == FixState.NOT_APPLICABLE and own.verdict == "absent-code"
    assert own.not_applicable == "changes Lib/new.py, which 3.11.2-stable does not have"
