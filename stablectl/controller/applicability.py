"""Applicability: does a flagged fix that conflicts concern the line at all?

A line anchored at an old release sees upstream fixes for code it never had. Instead of a
draft PR nobody can act on, such a fix is `not-applicable`, with the reason, when either

- **absent code**: every file the pick conflicts on is absent from the stable branch, or the
  lines the fix changes there exist nowhere in the branch's version of the file; or
- **main only**: the fix exists only on `main` (no backport on any maintenance branch the
  series reads), while the line's own maintenance branch took backports of fixes that landed
  on main at least `applicability.main_only_days` after it: upstream kept backporting to
  that branch and judged this fix not to concern it.

Only conflicting fixes are judged: a fix that applies is offered for review as before. A
maintainer can still ask for one (`/stablectl backport SHA`), and `applicability.skip: false`
restores draft PRs for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from stablectl.controller.selection import Source
from stablectl.gitops.pick import ConflictFile
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Series

DAY = 86400


def not_applicable(
    repo: pygit2.Repository,
    index: CommitIndex,
    series: Series,
    *,
    sources: Sequence[Source],
    conflicts: Sequence[ConflictFile],
    tip: str,
    own_backports: Sequence[str],
    main_only_days: int,
) -> str:
    """Why the fix does not concern the line ("" when it may)."""
    if not conflicts or not sources:
        return ""
    absent = _absent_code(repo, sources[0].sha, conflicts, tip, series.stable_branch)
    if absent:
        return absent
    return _main_only(index, series, sources, own_backports, main_only_days)


def _absent_code(
    repo: pygit2.Repository,
    source: str,
    conflicts: Sequence[ConflictFile],
    tip: str,
    branch: str,
) -> str:
    tree = repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree
    commit = repo[pygit2.Oid(hex=source)].peel(pygit2.Commit)
    if len(commit.parents) != 1:
        return ""
    missing: list[str] = []
    no_context: list[str] = []
    before = commit.parents[0].tree
    for c in conflicts:
        if c.path not in before:
            continue  # a file the fix adds: says nothing about code the line lacks
        try:
            ours = tree[c.path]
        except KeyError:
            missing.append(c.path)
            continue
        around = _changed_code(repo, commit, c.path)
        if not around:
            return ""  # the fix only adds lines there, with no context: nothing to judge
        text = bytes(repo[ours.id].read_raw()).decode("utf-8", "replace")
        have = {line.strip() for line in text.splitlines()}
        if around & have:
            return ""  # some of the code the fix changes, or its context, is there
        no_context.append(c.path)
    parts = []
    if not missing and not no_context:
        return ""
    if missing:
        parts.append(f"changes {_names(missing)}, which {branch} does not have")
    if no_context:
        parts.append(f"the lines it changes in {_names(no_context)} are not in {branch}")
    return "; ".join(parts)


def _changed_code(repo: pygit2.Repository, commit: pygit2.Commit, path: str) -> set[str]:
    """The substantial lines (stripped, 8 characters or more) the commit removes in `path`
    and the context around its changes: the code it needs to find there."""
    diff = repo.diff(commit.parents[0], commit, context_lines=3)
    out: set[str] = set()
    for patch in diff:
        if patch is None or patch.delta.old_file.path != path:
            continue
        for hunk in patch.hunks:
            for line in hunk.lines:
                text = line.content.strip()
                if line.origin in ("-", " ") and len(text) >= 8:
                    out.add(text)
    return out


def _main_only(
    index: CommitIndex,
    series: Series,
    sources: Sequence[Source],
    own_backports: Sequence[str],
    days: int,
) -> str:
    if any(s.kind in ("own-backport", "sibling-backport") for s in sources):
        return ""  # a maintenance branch took it: it concerns maintained code
    original = next((s for s in sources if s.kind == "original"), None)
    fix = index.facts(original.sha) if original is not None else None
    if fix is None:
        return ""
    for sha in reversed(own_backports):  # newest first: the answer is usually near the end
        later = index.facts(sha)
        if later is None or later.commit_time - fix.commit_time < days * DAY:
            continue
        took = (later.commit_time - fix.commit_time) // DAY
        return (
            f"only on {original.branch if original and original.branch else 'main'}: upstream's "
            f"{series.sources[0]} took later fixes from it ({later.sha[:10]}, {took} days "
            "after this one) but not this one"
        )
    return ""


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
