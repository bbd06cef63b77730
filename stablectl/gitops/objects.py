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


def _is_hex(s: str) -> bool:
    return len(s) == 40 and all(ch in "0123456789abcdef" for ch in s)
