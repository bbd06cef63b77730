"""Range summaries: what selection needs to know about a range of commits, folded once and
cached (sqlite, through `CommitIndex.range_data`), then extended incrementally as the branch
moves forward: a warm run reads what is new, not what is old.

A summary is plain JSON:
  n        number of commits folded in
  meta     sha -> [position, commit time]       for commits with hits, links or reverts
  hits     sha -> [[rule, reason, security]]    rules without conditions that need the forge
  pending  sha -> [rule names]                  rules whose label/issue condition needs it
  links    sha -> [sha named by "(cherry picked from commit …)"]
  reverts  sha -> [sha named by "This reverts commit …"]
  prs      "N" -> [sha, position, commit time]  upstream PR number of each commit
  paths    path -> [sha]                        (only in summaries of applied ranges)
  issues   "gh-N" -> [sha]                      (only in the series' own branch's summary)
  refs     token -> [[sha, position, commit time]] what each commit names besides itself
           (`messages.references`: gh-N, bpo-N, c-<hex>): where follow-ups are found
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import pygit2

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.controller.selection.flags import NoteLookup, evaluate_flags, rule_named
from stablectl.gitops import workers
from stablectl.gitops.messages import is_release_commit, references
from stablectl.gitops.objects import NoteReader
from stablectl.gitops.scan import CommitFacts, CommitIndex
from stablectl.policy import FlagRule

SUMMARY_VERSION = 4


class Summary(TypedDict):
    n: int
    meta: dict[str, tuple[int, int]]
    hits: dict[str, list[tuple[str, str, bool]]]
    pending: dict[str, list[str]]
    links: dict[str, list[str]]
    reverts: dict[str, list[str]]
    prs: dict[str, tuple[str, int, int]]
    paths: dict[str, list[str]]
    issues: dict[str, list[str]]
    refs: dict[str, list[tuple[str, int, int]]]


def empty_summary() -> Summary:
    return {
        "n": 0,
        "meta": {},
        "hits": {},
        "pending": {},
        "links": {},
        "reverts": {},
        "prs": {},
        "paths": {},
        "issues": {},
        "refs": {},
    }


def merge_summaries(chunks: list[Summary]) -> Summary:
    """Chunks of one range, oldest first, as one summary."""
    if len(chunks) == 1:
        return chunks[0]
    out = empty_summary()
    for c in chunks:
        out["n"] += c["n"]
        out["meta"].update(c["meta"])
        out["hits"].update(c["hits"])
        out["pending"].update(c["pending"])
        out["links"].update(c["links"])
        out["reverts"].update(c["reverts"])
        for pr, v in c["prs"].items():
            out["prs"].setdefault(pr, v)
        for path, shas in c["paths"].items():
            out["paths"].setdefault(path, []).extend(shas)
        for issue, shas in c.get("issues", {}).items():
            out["issues"].setdefault(issue, []).extend(shas)
        for token, found in c.get("refs", {}).items():
            out["refs"].setdefault(token, []).extend(found)
    return out


def in_paths(sha: str, summ: Summary) -> bool:
    return any(sha in shas for shas in summ["paths"].values())


def full_sha(index: CommitIndex, sha: str) -> str:
    """Expand an abbreviated SHA if the repository knows it."""
    if len(sha) == 40:
        return sha
    try:
        return str(index.repo.revparse_single(sha).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return sha


class Folder:
    """Folds commits into a summary chunk under the policy's flag rules."""

    def __init__(
        self,
        index: CommitIndex,
        rules: Sequence[FlagRule],
        *,
        note_of: NoteLookup | None,
        advisories: Mapping[str, AdvisoryIndex],
        in_workers: bool = True,
    ) -> None:
        self.index = index
        self.rules = rules
        self.note_of = note_of
        self.advisories = advisories
        self.in_workers = in_workers  # large ranges folded by worker processes

    def fold(
        self, with_paths: bool, with_issues: bool = False
    ) -> Callable[[int, list[str]], Summary]:
        def fold(start: int, new: list[str]) -> Summary:
            if self.in_workers and len(new) >= FOLD_IN_WORKERS and (spec := self._spec()):
                folded = self._in_workers(spec, start, new, with_paths, with_issues)
                if folded is not None:
                    return folded
            data = empty_summary()
            self.index.prefetch(new)
            with self.index.batch():
                for pos, sha in enumerate(new, start):
                    data["n"] += 1
                    f = self.index.facts(sha)
                    if f is not None:
                        self._add(data, pos, f, with_paths)
                        if with_issues:
                            for issue in f.info.issues:
                                data["issues"].setdefault(issue, []).append(sha)
            return data

        return fold

    def _spec(self) -> FoldSpec | None:
        """The folder as plain data for a worker process; None where a note lookup is a
        function of this process's own."""
        if self.note_of is not None and not isinstance(self.note_of, NoteReader):
            return None
        return FoldSpec(
            self.index.repo.path, tuple(self.rules), self.note_of is not None, self.advisories
        )

    def _in_workers(
        self, spec: FoldSpec, start: int, new: list[str], with_paths: bool, with_issues: bool
    ) -> Summary | None:
        """`new` folded in shares by worker processes, merged in order: the summary one fold
        gives (a share's positions start where it does). The facts the workers read are
        kept in the index's sqlite, for what selection asks next. None if no worker can."""
        n = 2 * workers.cores()
        size = -(-len(new) // n)
        jobs = [
            workers.submit(fold_share, spec, with_paths, with_issues, start + i, new[i : i + size])
            for i in range(0, len(new), size)
        ]
        if any(j is None for j in jobs):
            return None
        chunks: list[Summary] = []
        for job in jobs:
            assert job is not None
            done = workers.result(job)
            if done is None:
                return None
            summary, facts = done
            chunks.append(summary)
            self.index.keep_facts(facts)
        return merge_summaries(chunks)

    def _add(self, data: Summary, pos: int, f: CommitFacts, with_paths: bool) -> None:
        info = f.info
        sha = f.sha
        interesting = False
        if (
            len(f.parents) <= 1
            and not info.reverts
            and not is_release_commit(info.subject, f.paths)
        ):
            hits = evaluate_flags(f, self.rules, note_of=self.note_of, advisories=self.advisories)
            forge = {h.rule for h in hits if rule_named(self.rules, h.rule).needs_forge}
            static = [(h.rule, h.reason, h.security) for h in hits if h.rule not in forge]
            pending = [h.rule for h in hits if h.rule in forge]
            if static:
                data["hits"][sha] = static
            if pending:
                data["pending"][sha] = pending
            interesting = bool(static or pending)
            if info.pr is not None:
                data["prs"].setdefault(str(info.pr), (sha, pos, f.commit_time))
            for token in references(f.message):
                data["refs"].setdefault(token, []).append((sha, pos, f.commit_time))
        if info.cherry_picked_from:
            data["links"][sha] = [full_sha(self.index, x) for x in info.cherry_picked_from]
            interesting = True
        if info.reverts:
            data["reverts"][sha] = [full_sha(self.index, x) for x in info.reverts]
            interesting = True
        if interesting:
            data["meta"][sha] = (pos, f.commit_time)
        if with_paths:
            for p in f.paths:
                data["paths"].setdefault(p, []).append(sha)


# From this many commits, a range is folded by worker processes (gitops/workers.py): flag
# rules, messages and changed paths of 22,000 commits are 5 s of Python on a far line.
FOLD_IN_WORKERS = 1500


@dataclass(frozen=True)
class FoldSpec:
    """A Folder as plain data, for a worker process."""

    repo_path: str
    rules: tuple[FlagRule, ...]
    notes: bool  # read notes (with a NoteReader of the repository)
    advisories: Mapping[str, AdvisoryIndex]


_INDEXES: dict[str, CommitIndex] = {}  # a worker process's indexes (no sqlite), one per path


def fold_share(
    spec: FoldSpec, with_paths: bool, with_issues: bool, start: int, shas: list[str]
) -> tuple[Summary, list[tuple[str, str]]]:
    """A share of a range folded in a worker process: its summary, and the facts read (as
    the index's sqlite keeps them)."""
    index = _INDEXES.get(spec.repo_path)
    if index is None:
        if len(_INDEXES) >= 4:
            _INDEXES.clear()
        index = _INDEXES[spec.repo_path] = CommitIndex(pygit2.Repository(spec.repo_path), None)
    note_of = NoteReader(spec.repo_path) if spec.notes else None
    folder = Folder(
        index, spec.rules, note_of=note_of, advisories=spec.advisories, in_workers=False
    )
    summary = folder.fold(with_paths, with_issues)(start, shas)
    facts = [(sha, f.to_json()) for sha in shas if (f := index.facts(sha)) is not None]
    index.forget(shas)
    return summary, facts
