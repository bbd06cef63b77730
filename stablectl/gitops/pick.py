"""In-memory cherry-pick: no worktree, no checkout, no index file.

Three levers, tried in order until one gives a clean result:

1. **paths**: only the paths the source commit changes are merged (three-way, per file, with
   libgit2's file merge); the new tree is rebuilt along those paths only. This is what makes a
   pick cost what the patch costs rather than what the tree costs.
2. **libgit2**: `merge_trees` of the whole trees, with rename detection — for renames and
   paths that moved on the stable side.
3. **ort**: git's own merge (`git merge-tree --write-tree`, git ≥ 2.38, bare repositories
   welcome) between a synthetic commit (the stable tip's tree on the source's parent) and the
   source. On real stable history it resolves a share of libgit2's conflicts, usually exactly
   as maintainers did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import pygit2

from stablectl.gitops.file_merge import FileMerges, count_hunks
from stablectl.gitops.messages import cherry_pick_message, prerequisite_message
from stablectl.gitops.objects import find_commit
from stablectl.gitops.ort import Ort
from stablectl.gitops.path_map import remapped
from stablectl.gitops.pick_result import (
    ConflictFile,
    Lever,
    Outcome,
    PickResult,
    reported_by_ort,
    result_from_json,
    result_to_json,
)
from stablectl.gitops.trees import Entry, entry, is_blob, moved_dir, update_tree

# Part of every memoised pick's key: bump it when a lever's result for the same inputs changes.
PICK_VERSION = "4"


@dataclass(frozen=True)
class Committer:
    """Committer of the picks. With no fixed time, a pick is committed at the later of the
    source's and the tip's commit times: picks are then pure functions of their inputs, so
    the same pick gives the same SHA on every run (idempotent branches, cacheable plans)."""

    name: str
    email: str
    time: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class Origin:
    """What a pick's message records: the source (`-x`) and the fix it is a prerequisite of."""

    record: bool = True
    prerequisite_for: str | None = None


class PickMemo(Protocol):
    def memo_get(self, table: str, key: str) -> Any: ...
    def memo_put(self, table: str, key: str, data: Any) -> None: ...


@dataclass(frozen=True)
class PickerSpec:
    """A picker as plain data: the repository's path and the picks' settings. Hashable, so a
    worker process keeps one picker per spec."""

    repo_path: str
    committer: Committer
    levers: tuple[Lever, ...]
    path_map: tuple[tuple[str, str], ...]

    def open(self) -> Picker:
        repo = pygit2.Repository(self.repo_path)
        return Picker(repo, self.committer, levers=self.levers, path_map=dict(self.path_map))


class Picker:
    """Cherry-picks commits in memory into a repository's object database."""

    def __init__(
        self,
        repo: pygit2.Repository,
        committer: Committer,
        *,
        use_ort: bool = True,
        levers: Sequence[Lever] = ("paths", "libgit2", "ort"),
        memo: PickMemo | None = None,
        path_map: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = repo
        # Where a path of upstream's lives on the stable line: "dir/" prefixes or exact files
        # (a series' `path_map`), applied to the source before it is picked.
        self.path_map: dict[str, str] = dict(path_map or {})
        self.committer = committer
        self.levers = [lv for lv in levers if lv != "ort" or use_ort]
        self.ort = Ort(repo)
        self.memo = memo
        # Picks computed ahead by twins in threads (controller/pick_ahead.py): (source, onto,
        # memo key) -> the result as the memo holds it, or None. A pick found there counts as
        # computed by this plan, and is remembered like one.
        self.ahead: Callable[[str, str, str], Any] | None = None
        self.stats = {"picks": 0, "cached": 0}
        self.merges = FileMerges(repo)  # the paths lever's file merges, remembered

    def twin(self, repo: pygit2.Repository) -> Picker:
        """A picker making the same picks (committer, levers, path map) through another
        handle of the same repository, with no memo: for a thread of its own."""
        return Picker(repo, self.committer, levers=self.levers, path_map=self.path_map)

    def spec(self) -> PickerSpec:
        """What a twin is made of, as plain data (for a worker process)."""
        return PickerSpec(
            self.repo.path, self.committer, tuple(self.levers), tuple(sorted(self.path_map.items()))
        )

    # ------------------------------------------------------------------ public

    def pick(
        self,
        source_sha: str,
        onto_sha: str,
        *,
        record_origin: bool = True,
        paths: Sequence[str] | None = None,
        prerequisite_for: str | None = None,
        outcome_only: bool = False,
    ) -> PickResult:
        """Pick `source_sha` onto `onto_sha`. `paths`, if given, are the paths the source
        changes against its first parent (the scan knows them): the tree diff is skipped.
        `prerequisite_for` (a fix's key) adds the `Stablectl-Prerequisite-For:` trailer.
        `outcome_only`: nobody reads this pick's conflicts (a later source of a fix whose
        first one conflicts), so where a file's content conflicts at a path the tip has, which
        no merge method resolves, the other methods are not run."""
        start = time.perf_counter()
        origin = Origin(record_origin, prerequisite_for)
        key = self._memo_key(source_sha, onto_sha, origin)
        if key is not None and outcome_only:
            key += "|outcome-only"
        if key is not None and self.memo is not None:
            hit = result_from_json(self.memo.memo_get("picks", key))
            if hit is not None and (hit.commit is None or hit.commit in self.repo):
                self.stats["cached"] += 1
                hit.seconds = time.perf_counter() - start
                return hit
        result = self._computed_ahead(source_sha, onto_sha, key)
        if result is None:
            result = self._pick(source_sha, onto_sha, origin, paths, outcome_only)
        self.stats["picks"] += 1
        result.seconds = time.perf_counter() - start
        if key is not None and self.memo is not None and result.outcome != "error":
            self.memo.memo_put("picks", key, result_to_json(result))
        return result

    def _computed_ahead(self, source: str, onto: str, key: str | None) -> PickResult | None:
        if self.ahead is None or key is None:
            return None
        got = result_from_json(self.ahead(source, onto, key))
        if got is None or (got.commit is not None and got.commit not in self.repo):
            return None
        return got

    def _memo_key(self, source: str, onto: str, origin: Origin) -> str | None:
        c = self.committer
        return "|".join(
            [
                PICK_VERSION,
                source,
                onto,
                ",".join(self.levers),
                c.name,
                c.email,
                str(c.time),
                str(c.offset),
                str(origin.record),
                origin.prerequisite_for or "",
                json.dumps(self.path_map, sort_keys=True) if self.path_map else "",
            ]
        )

    def _pick(
        self,
        source_sha: str,
        onto_sha: str,
        origin: Origin,
        paths: Sequence[str] | None,
        outcome_only: bool = False,
    ) -> PickResult:
        repo = self.repo
        try:
            source = repo[source_sha].peel(pygit2.Commit)
            onto = repo[onto_sha].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as e:
            return PickResult(source_sha, onto_sha, "error", error=f"missing commit: {e}")
        if len(source.parents) != 1:
            kind = "a merge commit" if source.parents else "a root commit"
            return PickResult(source_sha, onto_sha, "error", error=f"{source_sha[:12]} is {kind}")
        original = source
        if self.path_map:
            source = remapped(self.repo, self.path_map, source)
            if source.id != original.id:
                paths = None  # the remapped paths differ from what the scan knows
        first: PickResult | None = None
        skip_libgit2 = False
        for lever in self.levers:
            if (lever == "libgit2" and skip_libgit2) or (
                lever == "ort" and not self.ort.available()
            ):
                continue
            res = self._by_lever(lever, source, onto, paths, source_sha, onto_sha)
            if res.outcome == "error" and lever == "paths":
                # A missing object in the source is fatal for every lever.
                return res
            if outcome_only and any(c.kind == "content" for c in res.conflicts):
                res.source = source_sha
                return res
            if lever == "paths" and "ort" in self.levers and self.ort.available():
                skip_libgit2 = self._only_ort_differs(res, source, onto)
            res.source = source_sha
            if res.ok:
                if res.outcome == "clean":
                    assert res.tree is not None
                    res.commit = self._commit(original, onto, res.tree, origin)
                return res
            first = _first_reported(first, res, lever)
        assert first is not None
        return first

    def _by_lever(
        self,
        lever: Lever,
        source: pygit2.Commit,
        onto: pygit2.Commit,
        paths: Sequence[str] | None,
        source_sha: str,
        onto_sha: str,
    ) -> PickResult:
        """One lever's pick; an object it cannot read is an error result, not an exception."""
        try:
            if lever == "paths":
                return self._pick_paths(source, onto, paths)
            if lever == "libgit2":
                return self._pick_libgit2(source, onto)
            return self._pick_ort(source, onto)
        except (KeyError, pygit2.GitError, ValueError, OSError) as e:
            return PickResult(
                source_sha,
                onto_sha,
                "error",
                lever=lever,
                error=f"missing or unreadable object (a partial clone?): {e}",
            )

    def _only_ort_differs(
        self, res: PickResult, source: pygit2.Commit, onto: pygit2.Commit
    ) -> bool:
        """Whether libgit2's whole-tree merge is skipped for git's after the per-path merge:
        only git's detects a directory the stable side moved; and where no rename can matter
        and only content conflicted, it would find the same (seconds on a 2.7 tree)."""
        if any(c.kind == "directory-rename" for c in res.conflicts):
            return True
        return all(c.kind == "content" for c in res.conflicts) and self.ort.rename_free(
            source, onto
        )

    # ------------------------------------------------------------------ lever 1: paths

    def _pick_paths(
        self, source: pygit2.Commit, onto: pygit2.Commit, paths: Sequence[str] | None
    ) -> PickResult:
        repo = self.repo
        base_tree = source.parents[0].tree
        their_tree = source.tree
        our_tree = onto.tree
        if paths is None:
            diff = base_tree.diff_to_tree(their_tree)
            paths = [p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)]
        changes: dict[str, Entry] = {}
        conflicts: list[ConflictFile] = []
        for path in dict.fromkeys(paths):
            base = entry(base_tree, path)
            theirs = entry(their_tree, path)
            ours = entry(our_tree, path)
            if base == theirs:
                continue
            if ours == base:
                if base is None and moved_dir(base_tree, our_tree, path):
                    conflicts.append(ConflictFile(path, "directory-rename", 1))
                    continue
                changes[path] = theirs
            elif ours == theirs:
                continue
            elif base is None or theirs is None or ours is None:
                kind = (
                    "add/add"
                    if base is None
                    else "modify/delete"
                    if ours is None
                    else "delete/modify"
                )
                conflicts.append(ConflictFile(path, kind, 1))
            elif is_blob(base) and is_blob(ours) and is_blob(theirs):
                merged = self.merges.merge(path, base, ours, theirs)
                if isinstance(merged, ConflictFile):
                    conflicts.append(merged)
                else:
                    changes[path] = merged
            else:
                conflicts.append(ConflictFile(path, "type", 1))
        if conflicts:
            return PickResult(
                str(source.id), str(onto.id), "conflict", lever="paths", conflicts=conflicts
            )
        new_tree = update_tree(repo, our_tree, changes) if changes else our_tree.id
        outcome: Outcome = "empty" if new_tree == our_tree.id else "clean"
        return PickResult(str(source.id), str(onto.id), outcome, tree=str(new_tree), lever="paths")

    # ------------------------------------------------------------------ lever 2: libgit2

    def _pick_libgit2(self, source: pygit2.Commit, onto: pygit2.Commit) -> PickResult:
        index = self.repo.merge_trees(source.parents[0].tree, onto.tree, source.tree)
        if index.conflicts is not None:
            conflicts = []
            for anc, ours, theirs in index.conflicts:
                path = next(e.path for e in (ours, theirs, anc) if e is not None)
                kind = _libgit2_kind(anc, ours, theirs)
                hunks = 1
                if anc is not None and ours is not None and theirs is not None:
                    blobs = [cast(pygit2.Blob, self.repo[e.id]) for e in (anc, ours, theirs)]
                    if any(b.is_binary for b in blobs):
                        kind = "binary"  # libgit2's file merge fails on these (no hunks)
                    else:
                        res = self.repo.merge_file_from_index(
                            anc, ours, theirs, use_deprecated=False
                        )
                        if res is not None:
                            hunks = max(1, count_hunks(res.contents))
                conflicts.append(ConflictFile(path, kind, hunks))
            return PickResult(
                str(source.id), str(onto.id), "conflict", lever="libgit2", conflicts=conflicts
            )
        tree = index.write_tree(self.repo)
        outcome: Outcome = "empty" if tree == onto.tree.id else "clean"
        return PickResult(str(source.id), str(onto.id), outcome, tree=str(tree), lever="libgit2")

    # ------------------------------------------------------------------ lever 3: ort

    def _pick_ort(self, source: pygit2.Commit, onto: pygit2.Commit) -> PickResult:
        proc = self.ort.merge(source, onto, name_only=True)
        if proc.returncode not in (0, 1):
            return PickResult(
                str(source.id),
                str(onto.id),
                "error",
                lever="ort",
                error=f"git merge-tree: {proc.stderr.decode(errors='replace').strip()}",
            )
        fields = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        tree = fields[0].strip()
        if proc.returncode == 1:
            paths = [p for p in fields[1:] if p]
            conflicts = [ConflictFile(p, "content", 1) for p in dict.fromkeys(paths)]
            return PickResult(
                str(source.id),
                str(onto.id),
                "conflict",
                lever="ort",
                conflicts=conflicts,
                marked_tree=tree or None,
            )
        outcome: Outcome = "empty" if tree == str(onto.tree.id) else "clean"
        return PickResult(str(source.id), str(onto.id), outcome, tree=tree, lever="ort")

    # ------------------------------------------------------------------ conflicts

    def conflict_commit(self, source_sha: str, onto_sha: str, message: str) -> str | None:
        """A commit on `onto` whose tree is git's own merge of the pick with conflict markers
        left in (what `git cherry-pick` leaves in a work tree), for a draft PR that shows the
        conflict. Deterministic like picks. None without git >= 2.38."""
        if not self.ort.available():
            return None
        source = find_commit(self.repo, source_sha)
        onto = find_commit(self.repo, onto_sha)
        if source is None or onto is None:
            return None
        if len(source.parents) != 1:
            return None
        proc = self.ort.merge(source, onto, name_only=False)
        if proc.returncode not in (0, 1):
            return None
        tree = proc.stdout.decode().split("\n", 1)[0].strip()
        return self.commit_as(source, onto, tree, message)

    # ------------------------------------------------------------------ commit

    def _commit(self, source: pygit2.Commit, onto: pygit2.Commit, tree: str, origin: Origin) -> str:
        message = source.message
        if origin.record:
            message = cherry_pick_message(message, str(source.id))
        if origin.prerequisite_for:
            message = prerequisite_message(message, origin.prerequisite_for)
        return self.commit_as(source, onto, tree, message)

    def commit_as(self, source: pygit2.Commit, onto: pygit2.Commit, tree: str, message: str) -> str:
        """A commit of `tree` on `onto`: the source's author, the policy's committer at the
        later of the two commit times (or a fixed time), so the same inputs give one SHA."""
        a = source.author
        author = pygit2.Signature(a.name, a.email, a.time, a.offset)
        c = self.committer
        when = c.time if c.time is not None else max(source.commit_time, onto.commit_time)
        committer = pygit2.Signature(c.name, c.email, when, c.offset)
        oid = self.repo.create_commit(
            None, author, committer, message, pygit2.Oid(hex=tree), [onto.id]
        )
        return str(oid)


# ---------------------------------------------------------------------- helpers


def _first_reported(first: PickResult | None, res: PickResult, lever: Lever) -> PickResult:
    """The failed pick a fix reports: the first lever's, with git's marked tree when a later
    lever made one, and its conflicts as git's merge sees them once ort has run."""
    if first is None:
        return res
    if res.marked_tree and not first.marked_tree:
        first.marked_tree = res.marked_tree
    if lever == "ort" and res.outcome == "conflict":
        return reported_by_ort(first, res)
    return first


def _libgit2_kind(
    anc: pygit2.IndexEntry | None,
    ours: pygit2.IndexEntry | None,
    theirs: pygit2.IndexEntry | None,
) -> str:
    if anc is None:
        return "add/add"
    if ours is None:
        return "modify/delete"
    if theirs is None:
        return "delete/modify"
    return "content"
