"""The one answer to "what is this commit": which upstream commit it reproduces, and whether
verbatim or adapted (with the exact interdiff).

Upstream is only what upstream's URL serves: its branches (`refs/remotes/upstream/*`) and its
tags (`refs/upstream/tags/*`), which only `RepoCache.fetch_upstream` writes. Nothing fetched from
the fork (`refs/remotes/fork/*`, `refs/fork-tags/*`) is ever read as upstream.

A commit is *verbatim* when re-picking the upstream commit its `(cherry picked from commit …)`
trailer names onto the commit's own parent, in memory with the engine's picker, gives exactly
its tree: same files, same blobs, same modes. Anything else is an *adaptation*, described by
the exact difference between the re-pick (with git's conflict markers where it conflicts) and
the commit's tree, and by a digest of that difference that a review record can bind to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pygit2

from stablectl.errors import GitError
from stablectl.gitops.git import run_git
from stablectl.gitops.messages import parse_message
from stablectl.gitops.objects import commit as get_commit
from stablectl.gitops.objects import find_commit
from stablectl.gitops.pick import Committer, Picker

UPSTREAM_BRANCHES = "refs/remotes/upstream/"
UPSTREAM_TAGS = "refs/upstream/tags/"

Origin = Literal["upstream", "patch-queue"]


@dataclass(frozen=True)
class Interdiff:
    """The exact difference between two trees: every changed path with its modes and blobs
    (binary files, mode flips and empty files included), the patch text, and its size."""

    entries: tuple[str, ...] = ()  # "status old_mode new_mode old_blob new_blob path"
    patch: str = ""
    lines: int = 0  # changed lines, plus one for each change with no text lines

    @property
    def empty(self) -> bool:
        return not self.entries

    @property
    def digest(self) -> str:
        """SHA-256 over the entries: two interdiffs are the same change iff they have it."""
        if not self.entries:
            return ""
        return hashlib.sha256(
            "\n".join(self.entries).encode("utf-8", "surrogateescape")
        ).hexdigest()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(e.split(" ", 5)[5] for e in self.entries)


def interdiff(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> Interdiff:
    """The exact interdiff from tree `old` to tree `new` (no rename detection, no whitespace
    folding: each byte counts)."""
    if old.id == new.id:
        return Interdiff()
    diff = old.diff_to_tree(new, flags=pygit2.enums.DiffOption.SHOW_BINARY)
    entries = []
    for d in diff.deltas:
        path = d.new_file.path or d.old_file.path
        entries.append(
            f"{d.status_char()} {d.old_file.mode:o} {d.new_file.mode:o} "
            f"{d.old_file.id} {d.new_file.id} {path}"
        )
    entries.sort(key=lambda e: e.split(" ", 5)[5])
    stats = diff.stats
    text_lines = int(stats.insertions + stats.deletions)
    silent = 0
    for patch in diff:
        if patch is None or not any(h.lines for h in patch.hunks):
            silent += 1
    return Interdiff(tuple(entries), diff.patch or "", text_lines + silent)


def repick(
    repo: pygit2.Repository, picker: Picker, c: pygit2.Commit, source: str
) -> tuple[str, Interdiff]:
    """Re-pick `source` onto `c`'s parent: the pick's outcome, and the exact interdiff from its
    tree (git's conflict markers left in where it conflicts) to `c`'s."""
    if len(c.parents) != 1:
        return "merge commit", interdiff(repo, c.tree, c.tree)
    parent = c.parents[0]
    res = picker.pick(source, str(parent.id), record_origin=False)
    base: pygit2.Tree = parent.tree
    if res.tree is not None:
        base = repo[pygit2.Oid(hex=res.tree)].peel(pygit2.Tree)
    elif res.outcome == "conflict":
        marked_tree = res.marked_tree
        if marked_tree is None or marked_tree not in repo:
            marked = picker.conflict_commit(source, str(parent.id), "stablectl: re-pick")
            marked_tree = str(get_commit(repo, marked).tree.id) if marked is not None else None
        if marked_tree is not None:
            base = repo[pygit2.Oid(hex=marked_tree)].peel(pygit2.Tree)
    return res.outcome, interdiff(repo, base, c.tree)


_REACHABLE: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}


def reachable(repo: pygit2.Repository, tips: list[pygit2.Oid]) -> frozenset[str]:
    """Every commit reachable from `tips` (tags peeled), walked once per repository and set of
    tips in a process and shared by every Provenance of it: one walk of upstream's history
    (a second on CPython) instead of a reachability search per question (29 ms each on
    systemd's, more for a commit upstream does not have; bench/verify_bench.py)."""
    commits = []
    for tip in tips:
        if (found := find_commit(repo, tip)) is not None:
            commits.append(found.id)
    key = (repo.path, tuple(sorted({str(c) for c in commits})))
    if key not in _REACHABLE:
        if not commits:
            return frozenset()
        if len(_REACHABLE) > 8:
            _REACHABLE.clear()
        try:  # git lists them ~1.7x faster than a pygit2 walk builds commit objects
            out = run_git(repo.path, ["rev-list", *key[1]]).split()
        except (GitError, OSError):
            walker = repo.walk(commits[0], pygit2.enums.SortMode.NONE)
            for c in commits[1:]:
                walker.push(c)
            out = [str(c.id) for c in walker]
        _REACHABLE[key] = frozenset(out)
    return _REACHABLE[key]


@dataclass(frozen=True)
class Reproduction:
    """What a commit of a stable branch is, recomputed from upstream facts."""

    commit: str
    named: tuple[str, ...] = ()  # what its trailers name (oldest first)
    source: str | None = None  # the named commit, resolved, when upstream or a queue has it
    origin: Origin | None = None
    repick: str = ""  # the re-pick's outcome onto the commit's parent: clean, empty, conflict…
    change: Interdiff = field(default_factory=Interdiff)  # re-pick → the commit's tree

    @property
    def verbatim(self) -> bool:
        return self.source is not None and self.repick in ("clean", "empty") and self.change.empty

    @property
    def adapted(self) -> bool:
        return self.source is not None and not self.verbatim


class Provenance:
    """Where commits come from, as upstream's own refs show it, and what they reproduce.
    `queue_refs` are the cache refs of the policy's patch queues (downstream patches, never
    upstream's). Answers are memoised."""

    def __init__(
        self,
        repo: pygit2.Repository,
        queue_refs: tuple[str, ...] = (),
        picker: Callable[[], Picker] | None = None,
    ) -> None:
        self.repo = repo
        refs: list[tuple[str, pygit2.Oid]] = [
            (name, pygit2.Oid(hex=str(repo.references[name].resolve().target)))
            for name in repo.references
            if name.startswith((UPSTREAM_BRANCHES, UPSTREAM_TAGS))
        ]
        self._tips = {
            False: [oid for name, oid in refs if not (queue_refs and name.startswith(queue_refs))],
            True: [oid for name, oid in refs if queue_refs and name.startswith(queue_refs)],
        }
        self._memo: dict[tuple[str, bool], bool] = {}
        self._picker_factory = picker
        self._picker: Picker | None = None
        self._explained: dict[str, Reproduction] = {}

    def has(self, sha: str, *, queue: bool = False) -> bool:
        """Whether upstream (`queue`: a patch queue) has the commit."""
        if (sha, queue) not in self._memo:
            try:
                oid = pygit2.Oid(hex=sha)
            except ValueError:
                return False
            self._memo[sha, queue] = str(oid) in reachable(self.repo, self._tips[queue])
        return self._memo[sha, queue]

    def origin(self, sha: str) -> Origin | None:
        """`upstream`, `patch-queue`, or None (neither has it)."""
        if self.has(sha):
            return "upstream"
        return "patch-queue" if self.has(sha, queue=True) else None

    def resolve(self, name: str) -> tuple[str | None, Origin | None]:
        """A (possibly abbreviated) SHA a trailer names, as a full SHA upstream or a queue has."""
        try:
            c = get_commit(self.repo, name) if len(name) == 40 else self._abbrev(name)
        except (KeyError, ValueError, pygit2.GitError):
            return None, None
        if c is None:
            return None, None
        sha = str(c.id)
        return sha, self.origin(sha)

    def _abbrev(self, name: str) -> pygit2.Commit | None:
        if len(name) < 7 or any(ch not in "0123456789abcdefABCDEF" for ch in name):
            return None
        return self.repo.revparse_single(name).peel(pygit2.Commit)

    def explain(self, sha: str, *, source: str | None = None) -> Reproduction:
        """What commit `sha` reproduces: the upstream commit its last `cherry picked from`
        trailer names (or `source`, for a commit not yet carrying the trailer), verbatim or
        adapted, by re-picking that commit onto `sha`'s parent."""
        key = f"{sha}:{source or ''}"
        if key in self._explained:
            return self._explained[key]
        c = get_commit(self.repo, sha)
        named = parse_message(c.message).cherry_picked_from
        want = source or (named[-1] if named else None)
        out = Reproduction(str(c.id), tuple(named))
        if want is not None:
            full, origin = self.resolve(want)
            if full is not None and origin is not None:
                out = self._compare(c, full, origin, tuple(named))
        self._explained[key] = out
        return out

    def _compare(
        self, c: pygit2.Commit, source: str, origin: Origin, named: tuple[str, ...]
    ) -> Reproduction:
        outcome, change = repick(self.repo, self.picker(), c, source)
        return Reproduction(str(c.id), named, source, origin, outcome, change)

    def picker(self) -> Picker:
        if self._picker is None:
            if self._picker_factory is not None:
                self._picker = self._picker_factory()
            else:
                self._picker = Picker(self.repo, Committer("stablectl", "stablectl@localhost"))
        return self._picker
