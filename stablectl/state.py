"""The state directory is a cache, and may come from anywhere: an earlier run on this machine,
an `actions/cache` entry restored from the newest scheduled run, a copy made by hand. What it
holds only saves time: the upstream and fork cache (`cache/<project>.git`, with the recorded
upstream tips that detect a rewrite), the commit index (`cache/<project>.sqlite`), the forge's
ETag store (`github-etags.sqlite`) and the upstream-issue cache (`upstream-issues.sqlite`).

Before a run uses it, `check_state` makes sure it is this mirror's, in this version's format,
and readable:

- a stamp (`STATE/stablectl-state.json`) names the state format, the stablectl that wrote it
  and the upstream and fork it caches. A state without a stamp (written by an older stablectl),
  in another format, or for another upstream or fork, keeps its git objects (content-addressed,
  valid for anyone) but loses everything derived: the index, ETags, issue cache and the
  recorded tips, which would otherwise report another project's branches as "rewritten";
- an SQLite file that is not a database, or fails `PRAGMA quick_check`, is removed and rebuilt;
- a git cache libgit2 cannot open is moved aside and fetched again.

Each of these is a notice, never an error: the run goes on, colder.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pygit2

from stablectl import __version__
from stablectl.policy import Policy

STAMP = "stablectl-state.json"
# Bump when a stored format changes in a way the stores' own versioning does not cover.
STATE_FORMAT = 1


def _derived(policy: Policy, state_dir: Path) -> list[Path]:
    """The state's derived stores (SQLite files): safe to drop, rebuilt on use."""
    return [
        state_dir / "cache" / f"{policy.project}.sqlite",
        state_dir / "github-etags.sqlite",
        state_dir / "upstream-issues.sqlite",
    ]


def _drop_sqlite(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def _sqlite_ok(path: Path) -> bool:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            (answer,) = db.execute("PRAGMA quick_check").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False
    return bool(answer == "ok")


def _stamp(policy: Policy) -> dict[str, object]:
    return {
        "format": STATE_FORMAT,
        "stablectl": __version__,
        "project": policy.project,
        "upstream": policy.upstream.git,
        "fork": policy.fork.git,
    }


_checked: dict[tuple[str, str], list[str]] = {}


def check_state(policy: Policy, state_dir: Path) -> list[str]:
    """Make the state directory safe to use for this policy, once per process (before the
    engine or the forge opens a store); returns what was discarded."""
    key = (str(state_dir.resolve()), json.dumps(_stamp(policy), sort_keys=True))
    if key not in _checked:
        _checked[key] = _check(policy, state_dir)
    return _checked[key]


def _check(policy: Policy, state_dir: Path) -> list[str]:
    notes: list[str] = []
    git = state_dir / "cache" / f"{policy.project}.git"
    stamp_path = state_dir / STAMP
    want = _stamp(policy)
    try:
        have = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    except (OSError, ValueError):
        have = {}
    used = git.exists() or any(p.exists() for p in _derived(policy, state_dir))
    if used:
        why = None
        if not isinstance(have, dict):
            why = "it has no stamp (an older stablectl wrote it)"
        elif have.get("format") != STATE_FORMAT:
            why = f"it is in format {have.get('format')!r}, this stablectl uses {STATE_FORMAT}"
        elif (have.get("upstream"), have.get("fork")) != (want["upstream"], want["fork"]):
            why = f"it caches {have.get('upstream')} and {have.get('fork')}, not this policy's"
        if why:
            for p in _derived(policy, state_dir):
                _drop_sqlite(p)
            (git / "stablectl-tips.json").unlink(missing_ok=True)
            notes.append(
                f"state {state_dir}: {why}; its index, ETags, issue cache and recorded tips "
                "were dropped and are rebuilt (git objects kept)"
            )
    for p in _derived(policy, state_dir):
        if p.exists() and not _sqlite_ok(p):
            _drop_sqlite(p)
            notes.append(f"state {state_dir}: {p.name} was corrupt; removed, rebuilt on use")
    if git.exists():
        try:
            pygit2.Repository(str(git))
        except pygit2.GitError as e:
            aside = git.with_name(f"{git.name}.corrupt-{int(time.time())}")
            shutil.move(str(git), str(aside))
            notes.append(
                f"state {state_dir}: the git cache could not be opened ({e}); moved to "
                f"{aside.name} and fetched again"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    if have != want:
        tmp = stamp_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(want, indent=2, sort_keys=True) + "\n")
        tmp.replace(stamp_path)
    return notes
