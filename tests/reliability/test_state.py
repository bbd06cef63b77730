"""Issue 18: scheduled runs restore STABLECTL_STATE from actions/cache, so the state may be
corrupt, written by an older stablectl, or another mirror's. Each costs time, never
correctness: the run notes what it discarded and ends where a run on a fresh state ends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stablectl.state import STAMP
from tests.controller.sync.test_sync import SyncEnv, make_env

IDENT = {
    "GIT_AUTHOR_NAME": "B",
    "GIT_AUTHOR_EMAIL": "b@example.invalid",
    "GIT_COMMITTER_NAME": "B",
    "GIT_COMMITTER_EMAIL": "b@example.invalid",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
}


def heads(env: SyncEnv) -> dict[str, str]:
    return {p.head: p.head_sha for p in env.open_prs()}


@pytest.fixture(params=["local", "github"])
def synced(request: pytest.FixtureRequest, tmp_path: Path) -> SyncEnv:
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    env = make_env(request.param, tmp_path, fake, series="3.11.2")
    assert env.sync().problems == []
    return env


def test_a_corrupt_store_is_rebuilt(synced: SyncEnv) -> None:
    before = heads(synced)
    stores = [synced.state / "cache" / "pyexample.sqlite"]
    if synced.kind == "github":
        stores.append(synced.state / "github-etags.sqlite")
    for store in stores:
        assert store.is_file()
        store.write_bytes(b"this is not an SQLite database" * 100)
        for suffix in ("-wal", "-shm"):
            store.with_name(store.name + suffix).unlink(missing_ok=True)
    # A fresh process (the check runs once per process): as the next scheduled run would.
    from stablectl import state

    state._checked.clear()
    report = synced.sync()
    assert report.problems == [] and report.api["writes"] == 0, report.actions
    notes = [n for n in report.notices if "was corrupt" in n]
    assert sorted(n.split(": ")[1].split(" ")[0] for n in notes) == sorted(s.name for s in stores)
    assert heads(synced) == before


def test_an_old_state_without_a_stamp_is_rebuilt(synced: SyncEnv) -> None:
    before = heads(synced)
    (synced.state / STAMP).unlink()
    from stablectl import state

    state._checked.clear()
    report = synced.sync()
    assert report.problems == [] and report.api["writes"] == 0
    assert any("it has no stamp (an older stablectl wrote it)" in n for n in report.notices)
    assert heads(synced) == before
    assert json.loads((synced.state / STAMP).read_text())["format"] == state.STATE_FORMAT


def test_another_mirrors_state_raises_no_false_rewrite(tmp_path: Path) -> None:
    """Mirror B runs on the state mirror A left (a shared cache key, a copied directory).
    A's recorded tips name A's upstream branches; without the check B's run stops with
    "upstream rewrote main". It only rebuilds what is derived, and ends as from scratch."""
    a = make_env("local", tmp_path / "a", None, series="3.11.2")
    b = make_env("local", tmp_path / "b", None, series="3.11.2")
    fresh = make_env("local", tmp_path / "fresh", None, series="3.11.2")
    # The examples are built alike: give B's upstream a main that A's never had.
    for env in (b, fresh):
        git = ["git", "--git-dir", str(env.example.upstream)]
        tip = subprocess.run([*git, "rev-parse", "main~1"], capture_output=True, text=True)
        tree = subprocess.run([*git, "rev-parse", "main^{tree}"], capture_output=True, text=True)
        other = subprocess.run(
            [*git, "commit-tree", tree.stdout.strip(), "-p", tip.stdout.strip(), "-m", "B's main"],
            capture_output=True,
            text=True,
            env={**os.environ, **IDENT},
        ).stdout.strip()
        subprocess.run([*git, "update-ref", "refs/heads/main", other], check=True)
    assert a.sync().problems == []
    # B's state is A's, forge included (the local forge lives in the state directory);
    # reset B's forge so its PRs are B's own.
    shutil.copytree(a.state, b.state)
    shutil.rmtree(b.state / "forge")
    from stablectl import state

    state._checked.clear()
    report = b.sync()
    assert report.problems == [], report.problems
    assert any("not this policy's" in n for n in report.notices), report.notices
    assert fresh.sync().problems == []
    assert sorted(p.title for p in b.open_prs()) == sorted(p.title for p in fresh.open_prs())
