"""Applicability: does a flagged fix that conflicts concern the line at all?

A line anchored at an old release sees upstream fixes for code it never had. Instead of a
draft PR nobody can act on, such a fix is `not-applicable`, with the reason, when either

- **absent code**: nothing the fix changes exists on the line: every file it modifies is
  absent from the stable branch, or neither the lines it changes nor their context exist in
  the branch's version of the file (files it adds do not count); or
- **main only**: the fix exists only on `main` (no backport on any maintenance branch the
  series reads, and no commit of the series' own branch names its issue), while the line's
  own maintenance branch took backports of fixes that landed on main at least
  `applicability.main_only_days` after it: upstream kept backporting to that branch and
  judged this fix not to concern it.

Only conflicting fixes are judged: a fix that applies is offered for review as before. A
maintainer can still ask for one (`/stablectl backport SHA`), and `applicability.skip: false`
restores draft PRs for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import pygit2

from stablectl.controller.selection import Fix, Source
from stablectl.gitops.pick import ConflictFile
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Series

DAY = 86400


def not_applicable(
    repo: pygit2.Repository,
    index: CommitIndex,
    series: Series,
    *,
    fix: Fix,
    sources: Sequence[Source],
    conflicts: Sequence[ConflictFile],
    tip: str,
    own_backports: Sequence[str],
    own_issues: AbstractSet[str],
    main_only_days: int,
) -> str:
    """Why the fix does not concern the line ("" when it may)."""
    if not conflicts or not sources:
        return ""
    absent = _absent_code(repo, sources[0].sha, tip, series.stable_branch)
    if absent:
        return absent
    if set(fix.issues) & own_issues:
        return ""  # the line's own branch did something for this issue (a backport without -x)
    return _main_only(index, series, sources, own_backports, main_only_days)


def _absent_code(repo: pygit2.Repository, source: str, tip: str, branch: str) -> str:
    """Nothing the fix changes exists on the line: every file it modifies is missing there,
    or neither the lines it removes nor their context are in the line's version of it."""
    tree = repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree
    commit = repo[pygit2.Oid(hex=source)].peel(pygit2.Commit)
    if len(commit.parents) != 1:
        return ""
    missing: list[str] = []
    no_context: list[str] = []
    for path, around in _changed_code(repo, commit).items():
        try:
            ours = tree[path]
        except KeyError:
            missing.append(path)
            continue
        if not around:
            return ""  # nothing substantial to look for there: cannot tell
        text = bytes(repo[ours.id].read_raw()).decode("utf-8", "replace")
        if around & {line.strip() for line in text.splitlines()}:
            return ""  # some of the code the fix changes, or its context, is there
        no_context.append(path)
    parts = []
    if missing:
        parts.append(f"changes {_names(missing)}, which {branch} does not have")
    if no_context:
        parts.append(f"the lines it changes in {_names(no_context)} are not in {branch}")
    return "; ".join(parts)


def _changed_code(repo: pygit2.Repository, commit: pygit2.Commit) -> dict[str, set[str]]:
    """Per file the commit modifies or deletes (not those it adds), the substantial lines
    (stripped, 8 characters or more) it removes and the context around its changes: the code
    it needs to find there."""
    diff = repo.diff(commit.parents[0], commit, context_lines=3)
    out: dict[str, set[str]] = {}
    for patch in diff:
        if patch is None or patch.delta.status == pygit2.enums.DeltaStatus.ADDED:
            continue
        lines = out.setdefault(patch.delta.old_file.path, set())
        for hunk in patch.hunks:
            for line in hunk.lines:
                text = line.content.strip()
                if line.origin in ("-", " ") and len(text) >= 8:
                    lines.add(text)
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
