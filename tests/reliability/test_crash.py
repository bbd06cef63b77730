"""Crash consistency: SIGKILL right after each write point of a run
(`python tests/crash.py N sync`), then run again, and compare with an
uninterrupted run: the same PRs and refs, no duplicate, no stray branch, and a quiet run
after. Scenarios here: the run that merges approved backports and re-proposes the release PR
(both forges), and the run that tags and publishes a release (GitHub; the local forge's is in
tests/controller/sync/test_release.py); GitHub's are slow: on demand (STABLECTL_SLOW=1). The
first sync (both forges) is in tests/controller/sync/test_sync.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from tests.controller.sync.test_release import approve_backports
from tests.controller.sync.test_sync import SyncEnv, make_env
from tests.ghserver.server import FakeGitHub


def picture(e: SyncEnv) -> tuple[object, ...]:
    """The end state, without SHAs of commits a merge made (they carry the time of the run):
    PRs by title, head branch, state and labels; every fork ref by the tree it holds."""
    prs = sorted(
        (p.title, p.head, p.state, p.draft, p.labels)
        for p in e.new_forge().list_prs("all")
        if p.state != "closed"
    )
    repo = pygit2.Repository(str(e.example.fork))
    refs = sorted(
        (name, str(repo.revparse_single(name).peel(pygit2.Tree).id)) for name in e.fork_refs()
    )
    return tuple(prs), tuple(refs)


def crash_matrix(make: Callable[[Path], SyncEnv], root: Path) -> int:
    ref = make(root / "ref")
    r = ref.cli("sync", "--json")
    assert r.returncode == 0, r.stderr
    points = int(json.loads(r.stdout)["write_points"])
    expected = picture(ref)
    for n in range(1, points + 1):
        e = make(root / f"crash{n}")
        r = e.cli("sync", crash_after=n)
        assert r.returncode == -9, (n, r.returncode, r.stderr[-1000:])
        r = e.cli("sync")
        assert r.returncode == 0, (n, r.stderr[-1000:])
        assert picture(e) == expected, n
        assert e.sync().api["writes"] == 0, n
        assert not [b for b in e.fork_refs() if b.startswith("refs/heads/stablectl/tmp")], n
    return points


def merge_round(kind: str, fake: FakeGitHub | None) -> Callable[[Path], SyncEnv]:
    def make(root: Path) -> SyncEnv:
        e = make_env(kind, root, fake, series="3.11.2", releases=True)
        assert e.sync().problems == []
        assert approve_backports(e)
        return e

    return make


def test_crash_in_the_merge_round_local(tmp_path: Path) -> None:
    points = crash_matrix(merge_round("local", None), tmp_path)
    assert points >= 4  # merges, their branch deletions, the release PR update


@pytest.mark.slow
def test_crash_in_the_merge_round_github(tmp_path: Path, fake_github: FakeGitHub) -> None:
    points = crash_matrix(merge_round("github", fake_github), tmp_path)
    assert points >= 6


def release_run(kind: str, fake: FakeGitHub | None) -> Callable[[Path], SyncEnv]:
    """The run that merges the approved release PR, tags, creates the release and uploads
    its assets."""
    from tests.controller.sync.test_release import approve_release

    def make(root: Path) -> SyncEnv:
        e = make_env(kind, root, fake, series="3.11.2", releases=True)
        assert e.sync().problems == []
        approve_release(e)
        return e

    return make


@pytest.mark.slow
def test_crash_in_the_release_run_github(tmp_path: Path, fake_github: FakeGitHub) -> None:
    points = crash_matrix(release_run("github", fake_github), tmp_path)
    assert points >= 6
