"""Small typed helpers over pygit2 objects."""

from __future__ import annotations

from collections import Counter
from typing import cast

import pygit2


def blob_bytes(repo: pygit2.Repository, oid: pygit2.Oid | str) -> bytes:
    return bytes(cast(pygit2.Blob, repo[oid]).data)


def tree(repo: pygit2.Repository, oid: pygit2.Oid | str) -> pygit2.Tree:
    return cast(pygit2.Tree, repo[oid])


def commit(repo: pygit2.Repository, rev: pygit2.Oid | str) -> pygit2.Commit:
    """The commit a SHA or a ref/tag name points at (KeyError if there is none)."""
    obj = repo[rev] if isinstance(rev, pygit2.Oid) or _is_hex(rev) else repo.revparse_single(rev)
    return obj.peel(pygit2.Commit)


def first_parent_diff(c: pygit2.Commit) -> pygit2.Diff:
    """The commit's change against its first parent (against nothing for a root commit)."""
    if c.parents:
        return c.parents[0].tree.diff_to_tree(c.tree)
    return c.tree.diff_to_tree(swap=True)


def patch_lines(diff: pygit2.Diff) -> Counter[str]:
    """The added and removed lines of a diff, with their file: what a patch changes."""
    out: Counter[str] = Counter()
    for patch in diff:
        if patch is None:
            continue
        path = patch.delta.new_file.path
        for hunk in patch.hunks:
            for line in hunk.lines:
                if line.origin in "+-":
                    out[f"{path}\0{line.origin}{line.content}"] += 1
    return out


def adaptation(c: pygit2.Commit, source: pygit2.Commit) -> int:
    """How many changed lines differ between a backport and the commit it names (0: the same
    change, perhaps at other line numbers)."""
    a, b = patch_lines(first_parent_diff(c)), patch_lines(first_parent_diff(source))
    return sum(((a - b) + (b - a)).values())


class Provenance:
    """Where a commit comes from, as the cache shows it: upstream (reachable from an upstream
    branch or tag) or a series' patch queue (reachable only from `queue_refs`, the cache's
    `upstream/stablectl-queue/*` branches). Answers are memoised."""

    def __init__(self, repo: pygit2.Repository, queue_refs: tuple[str, ...]) -> None:
        self.repo = repo
        refs = [
            (name, repo.references[name].resolve().target)
            for name in repo.references
            if name.startswith(("refs/remotes/upstream/", "refs/tags/"))
        ]
        self._tips = {
            False: [oid for name, oid in refs if not name.startswith(queue_refs)],
            True: [oid for name, oid in refs if queue_refs and name.startswith(queue_refs)],
        }
        self._memo: dict[tuple[str, bool], bool] = {}

    def has(self, sha: str, *, queue: bool = False) -> bool:
        """Whether upstream (`queue`: a patch queue) has the commit."""
        if (sha, queue) not in self._memo:
            oid = pygit2.Oid(hex=sha)
            self._memo[sha, queue] = any(
                tip == oid or self.repo.descendant_of(self.repo[tip].peel(pygit2.Commit).id, oid)
                for tip in self._tips[queue]
            )
        return self._memo[sha, queue]

    def origin(self, sha: str) -> str | None:
        """`upstream`, `patch-queue`, or None (neither has it)."""
        if self.has(sha):
            return "upstream"
        return "patch-queue" if self.has(sha, queue=True) else None


def _is_hex(s: str) -> bool:
    return len(s) == 40 and all(ch in "0123456789abcdef" for ch in s)
