"""Prerequisites from a failing test run (issue 16, part 2): a backport's tests import a helper
an earlier, unflagged upstream commit added (Debian's queue: gh-143916's
`test.support.control_characters_c0()`). The CI's `tests-failed` comment carries the log's
ImportError; the next sync finds the commit that defined the name and re-pushes the PR with it
as a prerequisite, and the tests pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pygit2
import pytest

from stablectl.controller.missing_names import (
    MissingName,
    block,
    evidence_lines,
    find_definer,
    from_comment,
    parse_missing,
)
from stablectl.forge.base import Marker
from stablectl.gitops.history import History
from stablectl.gitops.scan import CommitIndex
from tests.controller.sync.test_sync import CI_GITHUB, CI_LOCAL, SyncEnv, make_env
from tests.helpers import run_cli

LOG = """\
ERROR: test_fixf (unittest.loader._FailedTest.test_fixf)
ImportError: Failed to import test module: test_fixf
Traceback (most recent call last):
  File "/w/Lib/test/test_fixf.py", line 1, in <module>
    from support_x import helper
ImportError: cannot import name 'helper' from 'support_x' (/w/Lib/test/support_x.py)
AttributeError: module 'test.support' has no attribute 'control_characters_c0'
NameError: name 'frobnicate' is not defined
ModuleNotFoundError: No module named 'test.support.hashlib_helper'
"""


def test_the_log_names_what_is_missing() -> None:
    names = parse_missing(LOG)
    assert names == [
        MissingName("ImportError", "helper", "support_x"),
        MissingName("AttributeError", "control_characters_c0", "test.support"),
        MissingName("NameError", "frobnicate", ""),
        MissingName("ModuleNotFoundError", "", "test.support.hashlib_helper"),
    ]
    comment = "The test suite failed." + block(evidence_lines(LOG))
    assert from_comment(comment) == names
    assert from_comment("no block here") == []


def test_the_definer_is_the_commit_that_added_the_name(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/test/support/__init__.py": "x = 1\n"})
    h.commit("main", "unrelated", {"Lib/a.py": "a\n"})
    adds = h.commit(
        "main",
        "gh-143916: Add control_characters_c0 (#143917)",
        {"Lib/test/support/__init__.py": "x = 1\n\ndef control_characters_c0():\n    pass\n"},
    )
    tip = h.commit("main", "uses it", {"Lib/test/test_u.py": "from test.support import c\n"})
    git_dir = tmp_path / "up.git"
    m = MissingName("AttributeError", "control_characters_c0", "test.support")
    d = find_definer(git_dir, m, base, tip)
    assert d is not None and d.sha == adds and d.path == "Lib/test/support/__init__.py"
    assert "defines test.support.control_characters_c0" in d.why
    assert find_definer(git_dir, MissingName("NameError", "nowhere", ""), base, tip) is None
    assert find_definer(git_dir, m, adds, tip) is None  # already in the base
    # Kept in the commit index: a later run asks git nothing (here: no repository at all).
    index = CommitIndex(h.repo, None)
    assert find_definer(git_dir, m, base, tip, index) == d
    assert find_definer(tmp_path / "gone.git", m, base, tip, index) == d
    none = MissingName("NameError", "nowhere", "")
    assert find_definer(git_dir, none, base, tip, index) is None
    assert find_definer(tmp_path / "gone.git", none, base, tip, index) is None
    assert index.memo_get("definers", f"{base}..{tip}:NameError::nowhere") == []


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_failing_import_brings_the_commit_that_defines_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    env: SyncEnv = make_env(kind, tmp_path, fake, series="3.11.2")
    env.sync()
    up = History(env.example.upstream, clock=2_000_000_000)
    helper = up.commit(
        "main",
        "gh-3300: Add a test helper (#3301)",
        {"Lib/test/support_x.py": "def helper():\n    return 42\n"},
    )
    fix = up.commit(
        "main",
        "gh-3310: Check the answer (#3311)",
        {
            "Lib/test/test_fixf.py": (
                "import unittest\nfrom support_x import helper\n\n\n"
                "class T(unittest.TestCase):\n    def test_answer(self):\n"
                "        self.assertEqual(helper(), 42)\n"
            ),
            "Misc/NEWS.d/next/Security/2030-03-01-00-00-00.gh-issue-3310.rst": "Checked.\n",
        },
    )
    first = env.sync()
    assert first.problems == []
    pr = next(p for p in env.open_prs() if p.marker.original == fix)
    assert "prerequisite" not in pr.labels  # the pick is clean: nothing is known yet
    base = ["--state-dir", str(env.state)]
    if kind == "local":
        r = run_cli(capsys, *base, "ci", "run", "--policy", str(env.policy_path), "--json")
        assert r.code == 1
    else:
        # What the GitHub report job posts (test_workflows checks the job renders this block).
        marker = Marker("tests-failed", "", extra={"sha": pr.head_sha}).render()
        log = "ImportError: cannot import name 'helper' from 'support_x' (/w/support_x.py)\n"
        env.comment(pr.number, f"Failed.{block(evidence_lines(log))}\n\n{marker}", CI_GITHUB)
    comments = env.new_forge().comments_since(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    failed = [c for c in comments if c.number == pr.number and "stablectl-missing" in c.body]
    # The line has no support_x at all: the real run says ModuleNotFoundError.
    said = "No module named 'support_x'" if kind == "local" else "cannot import name 'helper'"
    assert failed and said in failed[-1].body
    second = env.sync()
    assert second.problems == []
    again = env.new_forge().get_pr(pr.number)
    assert again.head_sha != pr.head_sha and "prerequisite" in again.labels
    error, name = ("ModuleNotFoundError", "") if kind == "local" else ("ImportError", "helper")
    assert again.marker is not None
    assert again.marker.extra["missing"] == f"{error}:support_x:{name}"
    assert f"Needs upstream [`{helper[:10]}`]" in again.body or f"`{helper[:10]}`" in again.body
    what = "support_x" if kind == "local" else "support_x.helper"
    assert f"defines {what} (Lib/test/support_x.py)" in again.body
    assert f"{error} in the test log" in again.body
    repo = pygit2.Repository(str(env.example.fork))
    head = repo[pygit2.Oid(hex=again.head_sha)].peel(pygit2.Commit)
    assert f"(cherry picked from commit {helper})" in head.parents[0].message
    assert f"Stablectl-Prerequisite-For: {fix}" in head.parents[0].message
    if kind == "local":
        r = run_cli(capsys, *base, "ci", "run", "--policy", str(env.policy_path), "--json")
        assert r.code == 0, r.out
        assert "tests-failed" not in env.new_forge().get_pr(pr.number).labels
    assert env.sync().api["writes"] == 0  # kept: the marker remembers why


def test_a_name_no_upstream_commit_defines_is_said_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env("local", tmp_path, None, series="3.11.2")
    env.sync()
    pr = next(p for p in env.open_prs() if not p.draft)
    marker = Marker("tests-failed", "", extra={"sha": pr.head_sha}).render()
    log = "NameError: name 'nowhere_defined' is not defined\n"
    env.comment(pr.number, f"Failed.{block(evidence_lines(log))}\n\n{marker}", CI_LOCAL)
    report = env.sync()
    assert report.problems == [] and report.api["writes"] == 0
    assert any(
        "its tests miss nowhere_defined (NameError)" in n and "defines it" in n
        for n in report.notices
    )
    assert env.new_forge().get_pr(pr.number).head_sha == pr.head_sha


def test_when_a_pending_fix_defines_the_name_the_pr_is_stacked_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Debian's queue: gh-143925's tests import what gh-143916 (a fix with its own PR) adds.
    The failing PR is not given a copy of gh-143916: it is stacked on gh-143916's PR, says why,
    and its tests pass there."""
    env = make_env("local", tmp_path, None, series="3.11.2")
    env.sync()
    up = History(env.example.upstream, clock=2_000_000_000)
    helper = up.commit(
        "main",
        "gh-3400: Reject control characters (#3401)",
        {
            "Lib/test/support_y.py": "def control_characters_c0():\n    return 32\n",
            "Misc/NEWS.d/next/Security/2030-04-01-00-00-00.gh-issue-3400.rst": "Rejected.\n",
        },
    )
    fix = up.commit(
        "main",
        "gh-3410: Reject them in data: URLs too (#3411)",
        {
            "Lib/test/test_datafix.py": (
                "import unittest\nfrom support_y import control_characters_c0\n\n\n"
                "class T(unittest.TestCase):\n    def test_c0(self):\n"
                "        self.assertEqual(control_characters_c0(), 32)\n"
            ),
            "Misc/NEWS.d/next/Security/2030-04-02-00-00-00.gh-issue-3410.rst": "Rejected.\n",
        },
    )
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.original == fix)
    assert "depends" not in pr.marker.extra  # no shared file: not stacked yet
    base = ["--state-dir", str(env.state)]
    assert run_cli(capsys, *base, "ci", "run", "--policy", str(env.policy_path)).code == 1
    report = env.sync()
    assert report.problems == []
    again = env.new_forge().get_pr(pr.number)
    assert again.marker is not None
    assert again.marker.extra["depends"] == helper[:12]
    assert again.marker.extra["missing"] == "ModuleNotFoundError:support_y:"
    assert "prerequisite" not in again.labels and "prerequisites" not in again.marker.extra
    assert "| Its tests need | support_y (ModuleNotFoundError)" in again.body
    repo = pygit2.Repository(str(env.example.fork))
    head = repo[pygit2.Oid(hex=again.head_sha)].peel(pygit2.Commit)
    assert f"(cherry picked from commit {helper})" in head.parents[0].message
    assert "Stablectl-Prerequisite-For" not in head.parents[0].message
    r = run_cli(capsys, *base, "ci", "run", "--policy", str(env.policy_path), "--json")
    assert "tests-failed" not in env.new_forge().get_pr(pr.number).labels, r.out
    assert env.sync().api["writes"] == 0
