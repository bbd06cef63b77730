"""Prerequisites: the upstream commits a conflicting fix needs on the line first.

A line anchored at an old release sees fixes written against code that moved on: the
maintenance branch's own backport of a fix conflicts on the old tag because an earlier commit
of that branch rewrote the lines the fix changes. A stable maintainer finds that commit with
`git blame` and picks it first; so does this module:

1. **Blame the fix's hunks on the source side.** For every file the pick conflicts on, the
   lines the fix removes or keeps as context (its hunks in the source's parent) are blamed in
   `BASE..SOURCE^`: the commits after the line's base that wrote them are the candidates
   (merge commits, commits the policy excludes and commits already on the line are not).
   Only content conflicts are blamed: files the line lacks are applicability's business.
2. **Try them stacked under the fix, smallest set first** (`prerequisites.max_commits`), each
   set in upstream order, on the stable tip. The first set under which every prerequisite and
   then the fix pick cleanly wins.
3. **Recurse within the bound.** A candidate that conflicts itself adds its own blamed
   commits to the pool; they are tried in larger sets, never beyond `max_commits`.

A cycle cannot occur: a candidate is always an ancestor of what it was blamed for. What the
search could not resolve is reported as a chain ("X writes lines at P:L; X conflicts itself at
Q; Y writes …"), never dropped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cmp_to_key

import pygit2

from stablectl.gitops.blame import blame_lines
from stablectl.gitops.objects import find_commit
from stablectl.gitops.pick import Picker
from stablectl.gitops.pick_result import ConflictFile, PickResult
from stablectl.gitops.scan import CommitIndex

# Conflict kinds whose lines blame can explain. A file the line does not have (modify/delete)
# is not one: the commit that wrote it would bring a whole module to the line, a feature
# backport and not a prerequisite (applicability judges those fixes instead).
_BLAMABLE = {"content"}
BLAME_VERSION = "3"


@dataclass(frozen=True)
class Prerequisite:
    """An upstream commit a fix needs first, and why."""

    sha: str
    subject: str
    where: tuple[str, ...]  # "PATH:LINES" it wrote that the fix changes or keeps as context
    commit: str | None = None  # its pick in the chain under the fix
    context_only: bool = False  # it wrote only context lines of the fix's hunks
    reason: str = ""  # why, when not blame found it (a failing test run: controller/missing.py)
    missing: str = ""  # the names the tests missed that it defines (missing.encode)

    @property
    def why(self) -> str:
        if self.reason:
            return self.reason
        if self.context_only:
            return f"it writes lines next to those this fix changes, at {', '.join(self.where)}"
        return f"it writes lines this fix changes, at {', '.join(self.where)}"


@dataclass(frozen=True)
class Search:
    """The outcome of looking for prerequisites of one pick."""

    prerequisites: tuple[Prerequisite, ...] = ()
    result: PickResult | None = None  # the fix's clean pick on top of them
    tried: int = 0  # sets tried
    report: str = ""  # when none worked: what was found and why each set failed

    @property
    def found(self) -> bool:
        return self.result is not None and self.result.outcome == "clean"


class PrerequisiteFinder:
    """Finds the smallest set of upstream commits under which a conflicting pick is clean."""

    def __init__(
        self,
        repo: pygit2.Repository,
        index: CommitIndex,
        picker: Picker,
        *,
        max_commits: int,
        max_candidates: int = 8,
        max_sets: int = 64,
        unusable: Callable[[str], str] | None = None,
        horizon_days: int | None = None,
    ) -> None:
        self.repo = repo
        self.horizon_days = horizon_days
        self.index = index
        # Sets are tried with the two in-process levers only: git's merge (ort) costs ~0.8 s
        # per conflicting pick on CPython, and most sets tried conflict. A chain clean under
        # them is the same chain the full picker (paths first, then libgit2) gives in sync.
        self.picker = Picker(
            repo,
            picker.committer,
            levers=[lv for lv in picker.levers if lv != "ort"],
            memo=picker.memo,
        )
        self._full = picker
        self.max_commits = max_commits
        self.max_candidates = max_candidates
        self.max_sets = max_sets
        # Why a candidate may not be used ("" when it may): excluded by the policy, on the line.
        self.unusable = unusable or (lambda sha: "")
        self.stats = {"searches": 0, "sets": 0, "blames": 0, "found": 0}
        # Blames made ahead by pick threads (controller/pick_ahead.py): memo key -> a blame as
        # the memo holds it, or None.
        self.ahead: Callable[[str], object] | None = None

    def search(
        self,
        source: str,
        tip: str,
        base: str,
        conflicts: Sequence[ConflictFile],
        *,
        fix_key: str,
    ) -> Search:
        """Prerequisites of picking `source` onto `tip` (a line based on `base`)."""
        self.stats["searches"] += 1
        if self.max_commits < 1:
            return Search()
        self.picker.path_map = dict(self._full.path_map)
        pool: dict[str, Prerequisite] = {}
        rejected: list[str] = []
        self._add(pool, rejected, self.blame(source, base, conflicts))
        if not pool:
            why = "; ".join(rejected) if rejected else "blame names no commit after the base"
            return Search(report=f"no prerequisite candidate ({why})")
        failures: dict[tuple[str, ...], str] = {}
        tried = 0
        for size in range(1, self.max_commits + 1):
            ranked = list(pool)[: self.max_candidates]
            for combo in itertools.combinations(ranked, size):
                if tried >= self.max_sets:
                    break
                tried += 1
                self.stats["sets"] += 1
                ordered = self._upstream_order(combo)
                outcome = self._try(ordered, source, tip, base, fix_key, pool, rejected)
                if isinstance(outcome, str):
                    failures[ordered] = outcome
                    continue
                prereqs, result = outcome
                self.stats["found"] += 1
                return Search(prerequisites=prereqs, result=result, tried=tried)
        return Search(tried=tried, report=_chain_report(pool, failures, rejected, self.max_commits))

    # ------------------------------------------------------------------ one set

    def _try(
        self,
        ordered: tuple[str, ...],
        source: str,
        tip: str,
        base: str,
        fix_key: str,
        pool: dict[str, Prerequisite],
        rejected: list[str],
    ) -> tuple[tuple[Prerequisite, ...], PickResult] | str:
        onto = tip
        picked: list[Prerequisite] = []
        for sha in ordered:
            r = self.picker.pick(sha, onto, prerequisite_for=fix_key)
            if r.outcome == "conflict":
                # Recurse within the bound: what it needs joins the pool for larger sets.
                self._add(pool, rejected, self.blame(sha, base, r.conflicts))
                return f"{sha[:10]} conflicts itself at {_paths(r.conflicts)}"
            if r.outcome == "error":
                return f"{sha[:10]}: {r.error}"
            if r.outcome == "empty" or r.commit is None:
                return f"{sha[:10]} changes nothing on the line"
            onto = r.commit
            picked.append(replace(pool[sha], commit=r.commit))
        r = self.picker.pick(source, onto)
        if r.outcome == "clean":
            return tuple(picked), r
        if r.outcome == "conflict":
            return f"the fix still conflicts at {_paths(r.conflicts)}"
        return f"the fix is {r.outcome} on top of them"

    def _add(
        self, pool: dict[str, Prerequisite], rejected: list[str], found: list[Prerequisite]
    ) -> None:
        for p in found:
            if p.sha in pool:
                continue
            why = self.unusable(p.sha)
            if why:
                note = f"{p.sha[:10]} {why}"
                if note not in rejected:
                    rejected.append(note)
                continue
            pool[p.sha] = p

    def blame_ahead(self, base: str, take: int) -> BlameAhead | None:
        """What a pick thread (or worker process) does after a fix conflicts
        (controller/pick_ahead.py): the blame the search starts with, for the first `take`
        conflicting sources, recorded under the blame memo's key where `ahead` finds it.
        Blame is a git process per file, most of a far line's search, and does not depend on
        the tip. None when the search is off."""
        if self.max_commits < 1:
            return None
        return BlameAhead(base, take, self.since(base), self.horizon_days)

    def _upstream_order(self, shas: Sequence[str]) -> tuple[str, ...]:
        index = self.index  # ancestry answers are memoised there (and in sqlite)

        def cmp(a: str, b: str) -> int:
            if index.is_ancestor(a, b):
                return -1
            if index.is_ancestor(b, a):
                return 1
            fa, fb = self.index.facts(a), self.index.facts(b)
            ta = fa.commit_time if fa else 0
            tb = fb.commit_time if fb else 0
            return (ta > tb) - (ta < tb)

        return tuple(sorted(shas, key=cmp_to_key(cmp)))

    # ------------------------------------------------------------------ blame

    def blame(self, sha: str, base: str, conflicts: Sequence[ConflictFile]) -> list[Prerequisite]:
        """The commits in BASE..SHA^ that wrote the lines `sha` changes (or keeps as context)
        in the files it conflicts on, most lines first."""
        paths = blamable(conflicts)
        if not paths:
            return []
        key = blame_key(sha, base, self.horizon_days, paths)
        hit = self.index.memo_get("blame", key)
        if not isinstance(hit, list):
            self.stats["blames"] += 1  # made here, or ahead by a pick thread
            hit = self.ahead(key) if self.ahead is not None else None
            if not isinstance(hit, list):
                hit = blame_commit(self.repo, sha, base, paths, self.since(base))
            self.index.memo_put("blame", key, hit)
        out = []
        for cand, where, context_only in hit:
            facts = self.index.facts(cand)
            if facts is None or len(facts.parents) != 1:
                continue
            out.append(Prerequisite(cand, facts.info.subject, tuple(where), None, context_only))
        return out

    def since(self, base: str) -> int | None:
        """The oldest commit time blame attributes a line to (None: no horizon)."""
        facts = self.index.facts(base)
        if self.horizon_days is None or facts is None:
            return None
        return facts.commit_time - self.horizon_days * 86400


@dataclass(frozen=True)
class BlameAhead:
    """The blames a prerequisite search of a fix conflicting on the line based on `base`
    starts with, made where the pick was (a thread or a worker process: it is plain data)
    with that picker's repository, and recorded in its memo under the blame memo's key."""

    base: str
    take: int  # the first `take` conflicting sources (prerequisites.sources)
    since: int | None
    horizon_days: int | None

    def __call__(self, p: Picker, picks: Sequence[tuple[str, PickResult]]) -> None:
        conflicting = [(sha, r) for sha, r in picks if r.outcome == "conflict"]
        for sha, r in conflicting[: self.take]:
            paths = blamable(r.conflicts)
            if paths and p.memo is not None:
                found = blame_commit(p.repo, sha, self.base, paths, self.since)
                p.memo.memo_put("blame", blame_key(sha, self.base, self.horizon_days, paths), found)


def blamable(conflicts: Sequence[ConflictFile]) -> list[str]:
    """The files of a conflicting pick whose lines blame can explain."""
    return sorted({c.path for c in conflicts if c.kind in _BLAMABLE})


def blame_key(sha: str, base: str, horizon_days: int | None, paths: Sequence[str]) -> str:
    """The blame memo's key."""
    return "|".join([BLAME_VERSION, sha, base, str(horizon_days), *paths])


def blame_commit(
    repo: pygit2.Repository, sha: str, base: str, paths: Sequence[str], since: int | None
) -> list[list[object]]:
    """The commits in BASE..SHA^ (committed at or after `since`) that wrote the lines `sha`
    changes or keeps as context in `paths`, most of its own changes first, as the blame memo
    keeps them: [commit, where, context only]. Thread-safe given a repository handle of its
    own."""
    commit = find_commit(repo, sha)
    if commit is None:
        return []
    if len(commit.parents) != 1:
        return []
    parent = commit.parents[0]
    lines: dict[str, dict[str, list[int]]] = {}
    changed: dict[str, int] = {}  # lines of the fix's own changes each candidate wrote
    todo = [(path, *_old_lines(parent, commit, path)) for path in paths]
    todo = [t for t in todo if t[1]]

    def blame_one(path: str, ranges: list[tuple[int, int]]) -> list[tuple[str, int]]:
        return blame_lines(repo.path, base, str(parent.id), path, ranges, since=since)

    # One git per file, side by side (each walks the range on its own: 0.2-1.5 s a file
    # of a far line's fix); the results are read in the order of the paths.
    with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1) or 1) as pool:
        blamed = list(pool.map(lambda t: blame_one(t[0], t[1]), todo))
    for (path, _ranges, removed), found in zip(todo, blamed, strict=True):
        for cand, line in found:
            lines.setdefault(cand, {}).setdefault(path, []).append(line)
            changed[cand] = changed.get(cand, 0) + (line in removed)
    # Writers of lines the fix changes first, then those of its context only.
    ranked = sorted(
        lines.items(),
        key=lambda kv: (-changed[kv[0]], -sum(map(len, kv[1].values())), kv[0]),
    )
    return [
        [cand, [_where(p, ls) for p, ls in sorted(by_path.items())], changed[cand] == 0]
        for cand, by_path in ranked
    ]


def _old_lines(
    parent: pygit2.Commit, commit: pygit2.Commit, path: str
) -> tuple[list[tuple[int, int]], set[int]]:
    """The line ranges (1-based, inclusive) of `path` in the parent that the commit's hunks
    cover (lines it removes or replaces, and three lines of context), and the lines it
    removes or replaces."""
    try:
        old = parent.tree[path]
    except KeyError:
        return [], set()  # a file the commit adds: no lines to blame
    try:
        new: pygit2.Object | None = commit.tree[path]
    except KeyError:
        new = None
    if not isinstance(old, pygit2.Blob) or not isinstance(new, pygit2.Blob | None):
        return [], set()
    patch = old.diff(new) if new is not None else old.diff_to_buffer(None)  # 3 context lines
    if patch.delta.is_binary:
        return [], set()
    ranges: list[tuple[int, int]] = []
    removed: set[int] = set()
    for h in patch.hunks:
        if h.old_lines == 0:
            continue
        ranges.append((h.old_start, h.old_start + h.old_lines - 1))
        removed.update(ln.old_lineno for ln in h.lines if ln.origin == "-")
        # A pure insertion changes the lines it goes between: count those as changed too.
        for i, ln in enumerate(h.lines):
            if ln.origin == "+" and i > 0 and h.lines[i - 1].origin == " ":
                removed.add(h.lines[i - 1].old_lineno)
    return ranges, removed


def _where(path: str, lines: list[int]) -> str:
    ls = sorted(set(lines))
    spans: list[str] = []
    start = prev = ls[0]
    for n in [*ls[1:], 0]:
        if n == prev + 1:
            prev = n
            continue
        spans.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = n
    return f"{path}:{','.join(spans)}"


def _paths(conflicts: Sequence[ConflictFile]) -> str:
    return ", ".join(sorted({c.path for c in conflicts})) or "?"


def _chain_report(
    pool: dict[str, Prerequisite],
    failures: dict[tuple[str, ...], str],
    rejected: list[str],
    max_commits: int,
) -> str:
    parts = [
        f"{p.sha[:10]} ({p.subject[:60]}) writes lines at {', '.join(p.where[:3])}"
        for p in pool.values()
    ]
    for combo, why in list(failures.items())[:6]:
        parts.append(f"with {'+'.join(s[:10] for s in combo)}: {why}")
    parts += [f"not used: {r}" for r in rejected[:4]]
    head = f"no set of at most {max_commits} upstream commits makes it apply"
    return head + ("; " + "; ".join(parts) if parts else "")
