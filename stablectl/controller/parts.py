"""A conflicting pick judged per part: code, tests, documentation, NEWS.

On an old line most conflicts are not in the code. Of Red Hat's ten 2.7 CVE fixes, all ten
conflicted on a 2.7.18 line, mostly in files the line does not have or need as they are: a
later version's `Doc/whatsnew/3.6.rst`, a page deleted on the line, the test half alone
(tarfile's CVE-2019-20907). When no *code* file conflicts, the fix is picked again with
what is outside the code set aside:

- documentation that conflicts is **left out** (the line's own documentation stays as it is);
- a NEWS entry that conflicts (the line never had the file the fix edits) becomes **the
  line's own entry**: the fix's version of it, added whole;
- tests that conflict stay conflicting: they are **to adapt**, by a person.

The outcome is `new-to-adapt`, never shown as clean: a draft PR whose code is picked as
upstream wrote it, whose only conflict markers are in the tests (or none, where only
documentation was left out), and whose body lists what was left out and what is to adapt.
Its resolution is an adaptation, recorded and reviewed as any (`Stablectl-Adapted`)."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import pygit2

from stablectl.gitops.diffs import changed_paths
from stablectl.gitops.objects import find_commit
from stablectl.gitops.path_map import map_path
from stablectl.gitops.pick import Picker
from stablectl.gitops.pick_result import ConflictFile, PickResult
from stablectl.gitops.trees import entry, update_tree
from stablectl.policy import Applicability


class Part(enum.StrEnum):
    CODE = "code"
    TESTS = "tests"
    DOCS = "docs"
    NEWS = "news"


def part_of(path: str, rules: Applicability) -> Part:
    """Which part of a change `path` is (by the policy's globs)."""
    if any(fnmatch.fnmatchcase(path, g) for g in rules.news):
        return Part.NEWS
    if not rules.is_code(path):
        return Part.DOCS
    if rules.is_test(path):
        return Part.TESTS
    return Part.CODE


@dataclass(frozen=True)
class Split:
    """A conflicting fix picked again with its parts outside the code set aside."""

    source: str  # the synthetic commit picked (the fix, its docs left out, NEWS added whole)
    result: PickResult  # clean, or conflicting in tests only
    left_out: tuple[str, ...]  # documentation paths left out
    own_news: tuple[str, ...]  # NEWS entries added whole as the line's own
    to_adapt: tuple[str, ...]  # test paths that conflict

    def describe(self) -> tuple[str, ...]:
        """One line per path: what was done with it, for the plan, the PR and status."""
        return (
            *(f"tests: {p} conflicts: to adapt by hand" for p in self.to_adapt),
            *(f"docs: {p} left out (the line's own documentation is kept)" for p in self.left_out),
            *(f"news: {p} added whole as the line's own entry" for p in self.own_news),
            "code: picked as upstream wrote it",
        )


def split_pick(
    picker: Picker,
    source: str,
    onto: str,
    conflicts: Sequence[ConflictFile],
    rules: Applicability,
    path_map: dict[str, str],
) -> Split | None:
    """The fix `source` picked onto `onto` with conflicting documentation left out and
    conflicting NEWS entries added whole (the fix itself where only tests conflict); None
    when code conflicts, or still does once the rest is set aside."""
    inverse = {v: k for k, v in path_map.items()}
    parts = {c.path: part_of(inverse.get(c.path, c.path), rules) for c in conflicts}
    if not parts or Part.CODE in parts.values():
        return None
    repo = picker.repo
    commit = find_commit(repo, source)
    if commit is None or len(commit.parents) != 1:
        return None
    upstream = {map_path(path_map, p): p for p in changed_paths(repo, commit)[0]}
    docs = sorted(upstream.get(p, p) for p, k in parts.items() if k == Part.DOCS)
    news = sorted(upstream.get(p, p) for p, k in parts.items() if k == Part.NEWS)
    synthetic = _synthetic(repo, commit, docs, news) if docs or news else source
    res = picker.pick(synthetic, onto)
    if res.outcome == "conflict":
        tests = [c.path for c in res.conflicts if part_of(c.path, rules) == Part.TESTS]
        if len(tests) != len(res.conflicts):
            return None
        return Split(synthetic, res, tuple(docs), tuple(news), tuple(sorted(tests)))
    if res.outcome != "clean":
        return None
    return Split(synthetic, res, tuple(docs), tuple(news), ())


def _synthetic(
    repo: pygit2.Repository, commit: pygit2.Commit, docs: Sequence[str], news: Sequence[str]
) -> str:
    """A commit that is `commit` without its changes to `docs`, and whose NEWS entries in
    `news` are added whole (its parent does not have them): written to the repository, with
    the fix's message, author and committer, so the same fix gives the same SHA."""
    parent = commit.parents[0]
    base = parent.tree
    without_news = update_tree(repo, base, dict.fromkeys(news))
    tree = update_tree(repo, commit.tree, {p: entry(base, p) for p in docs})
    new_parent = repo.create_commit(
        None, parent.author, parent.committer, parent.message, without_news, list(parent.parent_ids)
    )
    oid = repo.create_commit(
        None, commit.author, commit.committer, commit.message, tree, [new_parent]
    )
    return str(oid)
