"""What one commit changes against its first parent: its paths (one commit at a time through
libgit2, or many at once from one `git log`) and its patch-id."""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from stablectl.errors import GitError
from stablectl.gitops.git import run_git_bytes
from stablectl.gitops.objects import first_parent_diff

MAX_PATHS = 5000  # a commit's paths are truncated past this many (a vendored library import)


def changed_paths(
    repo: pygit2.Repository, commit: pygit2.Commit, deleted: set[str] | None = None
) -> tuple[list[str], bool]:
    """Paths a commit changes against its first parent (tree diff, no content diff); the
    deleted ones are also added to `deleted` when given."""
    diff = first_parent_diff(commit)
    out: list[str] = []
    for delta in diff.deltas:
        out.append(delta.new_file.path)
        if delta.old_file.path != delta.new_file.path:
            out.append(delta.old_file.path)
        if deleted is not None and delta.status == pygit2.enums.DeltaStatus.DELETED:
            deleted.add(delta.old_file.path)
        if len(out) >= MAX_PATHS:
            return out, True
    return out, False


ChangedPaths = tuple[list[str], bool, set[str]]


def bulk_changed_paths(git_dir: str, shas: Sequence[str]) -> dict[str, ChangedPaths]:
    """`changed_paths` of many commits from one `git log` (a tenth of the cost of a tree diff
    each through libgit2 on CPython's history): (paths, truncated, deleted) by SHA, in the
    same order and shape (a type change is a deletion and an addition of one path). Empty
    when git cannot answer (an old git, a missing tree): the caller diffs commit by commit."""
    if not shas:
        return {}
    try:
        out = run_git_bytes(
            git_dir,
            [
                "log",
                "--no-walk=unsorted",
                "--stdin",
                "--format=%x01%H",
                "--name-status",
                "-z",
                "--no-renames",
                "--diff-merges=first-parent",
                "--root",
                "--no-ext-diff",
                "--no-textconv",
            ],
            input="".join(f"{s}\n" for s in shas).encode(),
        )
    except (GitError, OSError):
        return {}
    result: dict[str, ChangedPaths] = {}
    tokens = out.split(b"\0")
    sha: str | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i].lstrip(b"\n")
        i += 1
        if tok.startswith(b"\x01") and len(tok) == 41:
            sha = tok[1:].decode()
            result[sha] = ([], False, set())
            continue
        if not tok or sha is None or i >= len(tokens):
            continue
        path = tokens[i].decode("utf-8", "replace")
        i += 1
        paths, truncated, deleted = result[sha]
        for st in (b"D", b"A") if tok[:1] == b"T" else (tok[:1],):
            if truncated:
                break
            paths.append(path)
            if st == b"D":
                deleted.add(path)
            truncated = len(paths) >= MAX_PATHS
        result[sha] = (paths, truncated, deleted)
    if set(result) != set(shas):
        return {}
    return result


def commit_patch_id(repo: pygit2.Repository, commit: pygit2.Commit) -> str:
    """libgit2's patch-id of a commit against its first parent. Use it on both sides of every
    comparison: git's own `patch-id --stable` differs on ~8% of real commits."""
    return str(first_parent_diff(commit).patchid)
