"""A conflict outside the code (controller/parts.py): documentation the line lacks is left out,
a NEWS entry it never had is added whole, tests that conflict are to adapt; the code is picked
as upstream wrote it. `new-to-adapt`, a draft PR, never shown as clean."""

from __future__ import annotations

from pathlib import Path

import pygit2

from stablectl.controller.plan import PlannedFix
from stablectl.controller.selection import FixState
from stablectl.controller.sync import Syncer
from stablectl.controller.workspace import Workspace
from stablectl.forge.local import LocalForge
from stablectl.gitops.history import History
from stablectl.policy import load_policy
from tests.helpers import Line, plan_line

CODE = "def extract(member):\n    name = member.name\n    return open_member(name)\n"
FIXED = CODE.replace(
    "    return open_member(name)", "    refuse_absolute(name)\n    return open_member(name)"
)
TESTS = "class T:\n    def test_extract(self):\n        self.check_extract()\n"


def history(tmp_path: Path, *, tests_diverge: bool = True) -> tuple[History, str]:
    """tarfile's CVE-2019-20907 on an old line, in small: the line's test file diverged, the
    fix also edits a later version's What's New and a NEWS entry the line never had."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    base = h.commit("main", "base", {"Lib/tarfile.py": CODE, "Lib/test/test_tarfile.py": TESTS})
    h.branch("3.9", base)
    if tests_diverge:
        h.commit(
            "3.9",
            "[3.9] Rename a test helper",
            {"Lib/test/test_tarfile.py": TESTS.replace("check_extract", "check_extract_39")},
        )
    h.tag("v3.9.2", h.commit("3.9", "Python 3.9.2", {"README": "3.9.2\n"}))
    h.commit(
        "main",
        "What's New in 3.10 (#1)",
        {
            "Doc/whatsnew/3.10.rst": "New in 3.10\n",
            "Misc/NEWS.d/next/Library/tarfile.rst": "tarfile: members\n",
        },
    )
    fix = h.commit(
        "main",
        "gh-5: Refuse absolute member paths in tarfile (#6)",
        {
            "Lib/tarfile.py": FIXED,
            "Lib/test/test_tarfile.py": TESTS.replace(
                "check_extract()", "check_extract(strict=True)"
            ),
            "Doc/whatsnew/3.10.rst": "New in 3.10\ntarfile refuses absolute paths\n",
            "Misc/NEWS.d/next/Library/tarfile.rst": "tarfile: members; absolute paths refused\n",
            "Misc/NEWS.d/next/Security/gh-5.rst": "Refuse absolute paths.\n",
        },
    )
    return h, fix


def planned(tmp_path: Path, h: History, fix: str) -> PlannedFix:
    fixes = plan_line(tmp_path, h, "3.9.2", "3.9").series[0].fixes
    return next(pf for pf in fixes if pf.candidate.fix.key == fix)


def test_a_conflict_only_in_tests_and_docs_is_code_clean_with_tests_to_adapt(
    tmp_path: Path,
) -> None:
    h, fix = history(tmp_path)
    pf = planned(tmp_path, h, fix)
    assert pf.status == FixState.NEW_TO_ADAPT and pf.split is not None
    assert pf.split.to_adapt == ("Lib/test/test_tarfile.py",)
    assert pf.split.left_out == ("Doc/whatsnew/3.10.rst",)
    assert pf.split.own_news == ("Misc/NEWS.d/next/Library/tarfile.rst",)
    assert pf.evidence == (
        "tests: Lib/test/test_tarfile.py conflicts: to adapt by hand",
        "docs: Doc/whatsnew/3.10.rst left out (the line's own documentation is kept)",
        "news: Misc/NEWS.d/next/Library/tarfile.rst added whole as the line's own entry",
        "code: picked as upstream wrote it",
    )
    assert not pf.applies  # never a clean PR


def test_a_conflict_only_in_docs_is_to_adapt_without_markers(tmp_path: Path) -> None:
    h, fix = history(tmp_path, tests_diverge=False)
    pf = planned(tmp_path, h, fix)
    assert pf.status == FixState.NEW_TO_ADAPT and pf.split is not None
    assert pf.split.to_adapt == () and pf.split.result.outcome == "clean"
    assert pf.split.left_out == ("Doc/whatsnew/3.10.rst",)


def test_sync_opens_a_draft_whose_markers_are_in_the_tests_alone(tmp_path: Path) -> None:
    h, fix = history(tmp_path)
    line = Line.of(h, tmp_path)
    policy = line.write_policy(
        'name: "3.9.2", base: v3.9.2, sources: ["3.9", main], since: 2000-01-01',
        project="ta",
        more="maintainers: [maint]\nrelease: {trigger: manual}\n",
    )
    state = tmp_path / "state"
    forge = LocalForge(state / "forge" / "ta.sqlite", line.fork.path, slug="ta", actor="stablectl")
    eng = Workspace(load_policy(policy), state, committer_time=1_700_000_000)
    try:
        report = Syncer(eng, forge, policy_file=str(policy)).run()
    finally:
        eng.close()
    assert report.problems == []
    (pr,) = [p for p in forge.list_prs() if p.marker and p.marker.original == fix]
    assert pr.draft and pr.title.startswith("[to adapt] [3.9.2-stable] gh-5:")
    assert "to-adapt" in pr.labels and "conflicts" not in pr.labels
    assert pr.marker.extra["to_adapt"] == "1" and pr.marker.source == fix
    assert "Doc/whatsnew/3.10.rst left out" in pr.body and "to adapt by hand" in pr.body
    repo = line.fork.repo
    head = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit)
    tree = head.tree

    def text(path: str) -> str:
        return bytes(repo[tree[path].id].read_raw()).decode()

    assert text("Lib/tarfile.py") == FIXED  # the code as upstream wrote it
    assert "<<<<<<<" in text("Lib/test/test_tarfile.py")  # the only markers
    assert "Doc/whatsnew/3.10.rst" not in tree  # left out
    assert text("Misc/NEWS.d/next/Library/tarfile.rst").endswith("absolute paths refused\n")
    assert f"stablectl backport {fix[:12]}" in head.message  # the real fix, not the split
    # The next run keeps the head: no needless push.
    eng = Workspace(load_policy(policy), state, committer_time=1_700_000_000)
    try:
        again = Syncer(eng, forge, policy_file=str(policy)).run()
    finally:
        eng.close()
    assert not [a for a in again.applied if a.kind in ("push", "open")]
    assert forge.get_pr(pr.number).head_sha == pr.head_sha


def test_a_conflict_in_the_tests_alone_is_to_adapt(tmp_path: Path) -> None:
    """CVE-2020-26116 (httplib) and CVE-2020-27619 (multibytecodec) on 2.7.18 conflict only in
    their tests: the code picks clean, the tests are a person's to adapt."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    base = h.commit("main", "base", {"Lib/tarfile.py": CODE, "Lib/test/test_tarfile.py": TESTS})
    h.branch("3.9", base)
    h.commit(
        "3.9",
        "[3.9] Rename a test helper",
        {"Lib/test/test_tarfile.py": TESTS.replace("check_extract", "check_extract_39")},
    )
    h.tag("v3.9.2", h.commit("3.9", "Python 3.9.2", {"README": "3.9.2\n"}))
    fix = h.commit(
        "main",
        "gh-5: Refuse absolute member paths in tarfile (#6)",
        {
            "Lib/tarfile.py": FIXED,
            "Lib/test/test_tarfile.py": TESTS.replace("check_extract()", "check_extract(1)"),
            "Misc/NEWS.d/next/Security/gh-5.rst": "Refuse absolute paths.\n",
        },
    )
    pf = planned(tmp_path, h, fix)
    assert pf.status == FixState.NEW_TO_ADAPT and pf.split is not None
    assert pf.split.source == fix  # nothing set aside: the fix itself
    assert pf.split.to_adapt == ("Lib/test/test_tarfile.py",) and pf.split.left_out == ()
