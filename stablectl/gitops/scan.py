"""Walking history and indexing commits, with an sqlite cache that makes warm runs cheap.

Everything cached is a pure function of immutable objects (a commit's facts, a patch-id, the
commits between a tip and a set of hidden commits), so the cache can be deleted at any time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import SortMode

from stablectl.errors import GitError
from stablectl.gitops import workers
from stablectl.gitops.diffs import (
    ChangedPaths,
    bulk_changed_paths,
    changed_paths,
    commit_patch_id,
    patch_ids_of,
)
from stablectl.gitops.git import run_git
from stablectl.gitops.messages import MessageInfo, parse_message
from stablectl.gitops.objects import find_commit

# Below this many uncached commits, one tree diff each costs less than starting git.
_BULK_MIN = 32
# From this many patch-ids to compute, they are computed in worker processes side by side.
_PATCH_IDS_IN_WORKERS = 64
_SCHEMA_VERSION = 5


@dataclass(frozen=True)
class CommitFacts:
    """What stablectl needs to know of one commit; immutable, cacheable."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_time: int
    commit_time: int
    message: str
    paths: tuple[str, ...]  # changed paths against the first parent (added, modified, deleted)
    paths_truncated: bool = False
    error: str | None = None
    deleted: frozenset[str] = frozenset()  # of `paths`, those the commit deletes

    @cached_property
    def info(self) -> MessageInfo:
        return parse_message(self.message)

    @property
    def short(self) -> str:
        return self.sha[:10]

    def to_json(self) -> str:
        return json.dumps(
            [
                list(self.parents),
                self.author_name,
                self.author_email,
                self.author_time,
                self.commit_time,
                self.message,
                list(self.paths),
                self.paths_truncated,
                self.error,
                sorted(self.deleted),
            ]
        )

    @classmethod
    def from_json(cls, sha: str, text: str) -> CommitFacts:
        p, an, ae, at, ct, msg, paths, trunc, err, deleted = json.loads(text)
        return cls(sha, tuple(p), an, ae, at, ct, msg, tuple(paths), trunc, err, frozenset(deleted))

    @property
    def written_paths(self) -> tuple[str, ...]:
        """Changed paths the commit adds or modifies (renames by both names), not deletes."""
        if not self.deleted:
            return self.paths
        return tuple(p for p in self.paths if p not in self.deleted)


class CommitIndex:
    """Commit facts, patch-ids and walked ranges, memoised in memory and in sqlite."""

    def __init__(self, repo: pygit2.Repository, db_path: Path | None) -> None:
        self.repo = repo
        self._facts: dict[str, CommitFacts | None] = {}
        self._patch_ids: dict[str, str | None] = {}
        self._ranges: dict[str, tuple[str, Any]] = {}
        self._memo: dict[tuple[str, str], Any] = {}
        self._paths_ahead: dict[str, ChangedPaths] = {}  # from bulk_changed_paths, used once
        self.db: sqlite3.Connection | None = None
        self.stats = {
            "facts_computed": 0,
            "facts_cached": 0,
            "paths_in_bulk": 0,
            "walked": 0,
            "patch_ids": 0,
        }
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(db_path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    def _migrate(self) -> None:
        assert self.db is not None
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version != _SCHEMA_VERSION:
            with self.db:
                for t in (
                    "facts",
                    "patch_ids",
                    "ranges",
                    "range_chunks",
                    "picks",
                    "ancestry",
                    "blame",
                ):
                    self.db.execute(f"DROP TABLE IF EXISTS {t}")
                self.db.execute("CREATE TABLE picks (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
                self.db.execute("CREATE TABLE ancestry (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
                self.db.execute("CREATE TABLE facts (sha TEXT PRIMARY KEY, data TEXT NOT NULL)")
                self.db.execute("CREATE TABLE patch_ids (sha TEXT PRIMARY KEY, pid TEXT)")
                self.db.execute(
                    "CREATE TABLE range_chunks (key TEXT NOT NULL, seq INTEGER NOT NULL, "
                    "tip TEXT NOT NULL, n INTEGER NOT NULL, data TEXT NOT NULL, "
                    "PRIMARY KEY (key, seq))"
                )
                self.db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        # Memo tables added since the schema version: created where missing, no rebuild.
        with self.db:
            for table in ("blame", "definers", "carries", "verdicts"):
                self.db.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, data TEXT NOT NULL)"
                )

    def close(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group cache writes in one transaction."""
        if self.db is None:
            yield
            return
        with self.db:
            yield

    # ------------------------------------------------------------------ facts

    def exists(self, sha: str) -> bool:
        try:
            return self.repo.get(sha) is not None
        except (ValueError, pygit2.GitError):
            return False

    def facts(self, sha: str) -> CommitFacts | None:
        """Facts of a commit, or None if the repository does not have it."""
        if sha in self._facts:
            return self._facts[sha]
        if self.db is not None:
            row = self.db.execute("SELECT data FROM facts WHERE sha=?", (sha,)).fetchone()
            if row:
                cached = CommitFacts.from_json(sha, row[0])
                self._facts[sha] = cached
                self.stats["facts_cached"] += 1
                return cached
        computed = self._compute(sha)
        self._facts[sha] = computed
        if computed is not None and self.db is not None:
            self.db.execute("INSERT OR REPLACE INTO facts VALUES (?,?)", (sha, computed.to_json()))
        return computed

    def keep_facts(self, rows: Sequence[tuple[str, str]]) -> None:
        """Facts read elsewhere (a worker process), as sqlite keeps them: kept there, read
        back when asked for; without sqlite, kept in memory."""
        if self.db is None:
            for sha, data in rows:
                self._facts.setdefault(sha, CommitFacts.from_json(sha, data))
            return
        with self.batch():
            self.db.executemany("INSERT OR IGNORE INTO facts VALUES (?,?)", rows)

    def forget(self, shas: Iterable[str]) -> None:
        """Drop what is held in memory for these commits (a worker's index, between shares)."""
        for sha in shas:
            self._facts.pop(sha, None)
            self._paths_ahead.pop(sha, None)

    def prefetch(self, shas: Sequence[str]) -> None:
        """Load many facts from sqlite in few queries; the changed paths of many commits
        not cached yet come from one `git log` rather than a tree diff each."""
        todo = [s for s in shas if s not in self._facts]
        if self.db is not None:
            for i in range(0, len(todo), 500):
                chunk = todo[i : i + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT sha, data FROM facts WHERE sha IN ({marks})"
                for sha, data in self.db.execute(q, chunk):
                    self._facts[sha] = CommitFacts.from_json(sha, data)
                    self.stats["facts_cached"] += 1
            todo = [s for s in todo if s not in self._facts]
        if len(todo) >= _BULK_MIN:
            self._paths_ahead.update(bulk_changed_paths(self.repo.path, todo))

    def _compute(self, sha: str) -> CommitFacts | None:
        try:
            obj = self.repo.get(sha)
        except (ValueError, pygit2.GitError):
            return None
        if obj is None:
            return None
        try:
            commit = obj.peel(pygit2.Commit)
        except (pygit2.GitError, ValueError, KeyError):
            return None
        self.stats["facts_computed"] += 1
        error: str | None = None
        paths: list[str] = []
        deleted: set[str] = set()
        truncated = False
        ahead = self._paths_ahead.pop(sha, None)
        if ahead is not None:
            paths, truncated, deleted = ahead
            self.stats["paths_in_bulk"] += 1
        else:
            try:
                paths, truncated = changed_paths(self.repo, commit, deleted)
            except (KeyError, pygit2.GitError, ValueError) as e:
                error = f"cannot read the trees of {sha[:12]}: {e}"
        try:
            message = commit.message
        except (UnicodeDecodeError, LookupError):
            message = commit.raw_message.decode("utf-8", "replace")
        a = commit.author
        return CommitFacts(
            sha=sha,
            parents=tuple(str(p) for p in commit.parent_ids),
            author_name=_decode(a, "name"),
            author_email=_decode(a, "email"),
            author_time=int(a.time),
            commit_time=int(commit.commit_time),
            message=message,
            paths=tuple(paths),
            paths_truncated=truncated,
            error=error,
            deleted=frozenset(deleted),
        )

    # ------------------------------------------------------------------ patch-ids

    def prefetch_patch_ids(self, shas: Iterable[str]) -> None:
        """Patch-ids of many commits, those not known yet computed side by side in worker
        processes (a diff holds Python's lock: threads would take turns): 10 ms each on
        CPython, hundreds for a far line's selection. Few are computed here, when asked."""
        todo = [s for s in dict.fromkeys(shas) if s not in self._patch_ids]
        if self.db is not None and todo:
            for i in range(0, len(todo), 500):
                chunk = todo[i : i + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT sha, pid FROM patch_ids WHERE sha IN ({marks})"
                self._patch_ids.update(self.db.execute(q, chunk).fetchall())
            todo = [s for s in todo if s not in self._patch_ids]
        if len(todo) < _PATCH_IDS_IN_WORKERS:
            return
        n = 4 * workers.cores()  # small shares: a worker that finishes early takes another
        jobs = [workers.submit(patch_ids_of, self.repo.path, todo[i::n]) for i in range(n)]
        with self.batch():
            for job in jobs:
                found = workers.result(job) if job is not None else None
                for sha, pid in (found or {}).items():
                    self.stats["patch_ids"] += 1
                    self._patch_ids[sha] = pid
                    if self.db is not None:
                        self.db.execute("INSERT OR REPLACE INTO patch_ids VALUES (?,?)", (sha, pid))

    def patch_id(self, sha: str) -> str | None:
        if sha in self._patch_ids:
            return self._patch_ids[sha]
        if self.db is not None:
            row = self.db.execute("SELECT pid FROM patch_ids WHERE sha=?", (sha,)).fetchone()
            if row:
                self._patch_ids[sha] = row[0]
                return row[0]  # type: ignore[no-any-return]
        pid: str | None
        try:
            commit = self.repo[sha].peel(pygit2.Commit)
            pid = commit_patch_id(self.repo, commit)
        except (KeyError, ValueError, pygit2.GitError):
            pid = None
        self.stats["patch_ids"] += 1
        self._patch_ids[sha] = pid
        if self.db is not None:
            self.db.execute("INSERT OR REPLACE INTO patch_ids VALUES (?,?)", (sha, pid))
        return pid

    # ------------------------------------------------------------------ walking

    def walk(self, tip: str, hide: Iterable[str], key: str) -> list[str]:
        """Commits reachable from tip and not from any hidden commit, oldest first (cached)."""

        def fold(start: int, new: list[str]) -> list[str]:
            return new

        def merge(chunks: list[Any]) -> list[str]:
            return [sha for chunk in chunks for sha in chunk]

        return list(self.range_data(key, tip, hide, fold=fold, merge=merge))

    def first_parent_before(self, tip: str, when: int) -> str | None:
        """The newest commit on `tip`'s first-parent chain committed before `when` (None when
        the chain has none): hiding it keeps a range to what came after."""
        commit = find_commit(self.repo, tip)
        if commit is None:
            return None
        while commit.commit_time >= when:
            if not commit.parents:
                return None
            commit = commit.parents[0]
        return str(commit.id)

    def range_data(
        self,
        key: str,
        tip: str,
        hide: Iterable[str],
        *,
        fold: Callable[[int, list[str]], Any],
        merge: Callable[[list[Any]], Any],
    ) -> Any:
        """Data derived from the commits of a range (tip minus hidden), cached under `key`.

        `fold(start, commits)` turns commits (oldest first; `start` is the position of the
        first) into a chunk of data; `merge(chunks)` combines chunks in order. When the tip
        later moves forward, only the new commits are walked and folded, and their chunk is
        appended: a warm run costs what is new, not what is old. A tip that moved elsewhere
        rebuilds the range; many small chunks are compacted into one now and then.
        """
        hide = sorted(set(hide))
        full_key = f"{key}|{','.join(hide)}"
        cached = self._ranges.get(full_key)
        if cached is not None and cached[0] == tip:
            return cached[1]
        chunks: list[tuple[int, str, int, Any]] = []  # (seq, tip, count, data)
        if self.db is not None:
            for seq, ctip, count, blob in self.db.execute(
                "SELECT seq, tip, n, data FROM range_chunks WHERE key=? ORDER BY seq",
                (full_key,),
            ):
                chunks.append((seq, ctip, count, json.loads(blob)))
        if chunks and chunks[-1][1] == tip:
            data = merge([c[3] for c in chunks])
        elif chunks and self._is_ancestor(chunks[-1][1], tip):
            start = sum(c[2] for c in chunks)
            new = self._walk(tip, [*hide, chunks[-1][1]])
            chunk = (chunks[-1][0] + 1, tip, len(new), fold(start, new))
            chunks.append(chunk)
            if len(chunks) > 32:
                whole = merge([c[3] for c in chunks])
                self._write_chunks(full_key, [(0, tip, start + len(new), whole)])
                chunks = [(0, tip, start + len(new), whole)]
            else:
                self._write_chunks(full_key, [chunk], replace=False)
            data = merge([c[3] for c in chunks])
        else:
            new = self._walk(tip, hide)
            data = fold(0, new)
            self._write_chunks(full_key, [(0, tip, len(new), data)])
            data = merge([data])
        self._ranges[full_key] = (tip, data)
        return data

    def _write_chunks(
        self, key: str, chunks: list[tuple[int, str, int, Any]], replace: bool = True
    ) -> None:
        if self.db is None:
            return
        if replace:
            self.db.execute("DELETE FROM range_chunks WHERE key=?", (key,))
        for seq, tip, count, data in chunks:
            self.db.execute(
                "INSERT OR REPLACE INTO range_chunks VALUES (?,?,?,?,?)",
                (key, seq, tip, count, json.dumps(data, separators=(",", ":"))),
            )

    def _is_ancestor(self, old: str, new: str) -> bool:
        try:
            return bool(self.repo.descendant_of(pygit2.Oid(hex=new), pygit2.Oid(hex=old)))
        except (pygit2.GitError, KeyError, ValueError):
            return False

    def _walk(self, tip: str, hide: Sequence[str]) -> list[str]:
        walker = self.repo.walk(
            pygit2.Oid(hex=tip), SortMode.TOPOLOGICAL | SortMode.TIME | SortMode.REVERSE
        )
        for h in hide:
            with suppress(KeyError, pygit2.GitError, ValueError):
                walker.hide(pygit2.Oid(hex=h))
        out = [str(c.id) for c in walker]
        self.stats["walked"] += len(out)
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Ancestry, memoised (it never changes for two given commits)."""
        if ancestor == descendant:
            return True
        key = f"{ancestor}:{descendant}"
        cached = self.memo_get("ancestry", key)
        if cached is not None:
            return bool(cached)
        result = self._is_ancestor(ancestor, descendant)
        self.memo_put("ancestry", key, result)
        return result

    def merge_base(self, a: str, b: str) -> str | None:
        """Merge base of two commits, memoised (it never changes for two given commits)."""
        key = f"mb:{a}:{b}"
        cached = self.memo_get("ancestry", key)
        if cached is not None:
            return str(cached) or None
        result = self._only_merge_base(a, b)
        if result is None:
            try:
                mb = self.repo.merge_base(pygit2.Oid(hex=a), pygit2.Oid(hex=b))
            except (pygit2.GitError, KeyError, ValueError):
                return None
            result = str(mb) if mb else ""
        self.memo_put("ancestry", key, result)
        return result or None

    def _only_merge_base(self, a: str, b: str) -> str | None:
        """git's merge base of two commits when it is the only one (None otherwise: libgit2
        then chooses, as it always did). git walks with the commit-graph's generation numbers:
        0.02-0.1 s between a 2.7 tag and CPython's main, against 0.3-2 s for libgit2."""
        try:
            out = run_git(self.repo.path, ["merge-base", "--all", a, b]).split()
        except (GitError, OSError):
            return None
        return out[0] if len(out) == 1 and len(out[0]) == 40 else None

    # ------------------------------------------------------------------ generic memo

    def memo_get(self, table: str, key: str) -> Any:
        if self.db is None:
            return self._memo.get((table, key))
        row = self.db.execute(f"SELECT data FROM {table} WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def memo_put(self, table: str, key: str, data: Any) -> None:
        if self.db is None:
            self._memo[(table, key)] = data
            return
        self.db.execute(
            f"INSERT OR REPLACE INTO {table} VALUES (?,?)",
            (key, json.dumps(data, separators=(",", ":"))),
        )


def _decode(sig: pygit2.Signature, attr: str) -> str:
    try:
        return str(getattr(sig, attr))
    except (UnicodeDecodeError, LookupError):
        raw: bytes = getattr(sig, f"raw_{attr}")
        return raw.decode("utf-8", "replace")
