"""What one commit changes against its first parent: its paths (one commit at a time through
libgit2, or many at once from one `git log`) and its patch-id."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pygit2

from stablectl.errors import GitError
from stablectl.gitops.git import run_git_bytes
from stablectl.gitops.objects import first_parent_diff

MAX_PATHS = 5000  # a commit's paths are truncated past this many (a vendored library import)
_SHARE_MIN = 500  # commits a git of bulk_changed_paths reads at least (starting one costs)


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


def bulk_changed_paths(
    git_dir: str, shas: Sequence[str], *, jobs: int | None = None
) -> dict[str, ChangedPaths]:
    """`changed_paths` of many commits from one `git log` (a tenth of the cost of a tree diff
    each through libgit2 on CPython's history): (paths, truncated, deleted) by SHA, in the
    same order and shape (a type change is a deletion and an addition of one path). Empty
    when git cannot answer (an old git, a missing tree): the caller diffs commit by commit.

    Many commits are read by `jobs` gits side by side (one per core by default), each on its
    share: a commit's paths do not depend on the others read with it."""
    n = max(1, min(jobs or os.cpu_count() or 1, len(shas) // _SHARE_MIN))
    if n == 1:
        return _one_log(git_dir, shas)
    size = -(-len(shas) // n)
    shares = [shas[i : i + size] for i in range(0, len(shas), size)]
    with ThreadPoolExecutor(max_workers=len(shares)) as pool:
        parts = list(pool.map(lambda share: _one_log(git_dir, share), shares))
    if any(not part for part in parts):
        return {}
    return {sha: paths for part in parts for sha, paths in part.items()}


def _one_log(git_dir: str, shas: Sequence[str]) -> dict[str, ChangedPaths]:
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


_REPOS: dict[str, pygit2.Repository] = {}  # a worker process's handles, one per path


def patch_ids_of(repo_path: str, shas: Sequence[str]) -> dict[str, str | None]:
    """`commit_patch_id` of each commit (None: not a readable commit), through a handle of
    the repository at `repo_path`: what a worker process runs (gitops/workers.py)."""
    repo = _REPOS.get(repo_path)
    if repo is None:
        if len(_REPOS) >= 4:
            _REPOS.clear()
        repo = _REPOS[repo_path] = pygit2.Repository(repo_path)
    out: dict[str, str | None] = {}
    for sha in shas:
        try:
            out[sha] = commit_patch_id(repo, repo[sha].peel(pygit2.Commit))
        except (KeyError, ValueError, pygit2.GitError):
            out[sha] = None
    return out
