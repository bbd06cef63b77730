"""Small typed helpers over pygit2 objects."""

from __future__ import annotations

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


def find_commit(repo: pygit2.Repository, rev: pygit2.Oid | str) -> pygit2.Commit | None:
    """The commit a SHA or a ref/tag name points at, or None: an unknown or malformed name, an
    object missing from the repository, or one that is not a commit."""
    try:
        return commit(repo, rev)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def contains(repo: pygit2.Repository, tip: str | None, sha: str) -> bool:
    """Commit `sha` is `tip` or below it (False for an unknown commit or no tip)."""
    if tip is None:
        return False
    if tip == sha:
        return True
    try:
        return bool(repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=sha)))
    except (KeyError, ValueError, pygit2.GitError):
        return False


def first_parent_diff(c: pygit2.Commit) -> pygit2.Diff:
    """The commit's change against its first parent (against nothing for a root commit)."""
    if c.parents:
        return c.parents[0].tree.diff_to_tree(c.tree)
    return c.tree.diff_to_tree(swap=True)


def _is_hex(s: str) -> bool:
    return len(s) == 40 and all(ch in "0123456789abcdef" for ch in s)


class NoteReader:
    """A commit's note under a notes ref (None: none), read from the repository at a path:
    plain data, so a worker process folding commits (selection/summaries.py) reads notes
    as the planner's process does."""

    def __init__(self, repo_path: str) -> None:
        self.repo_path = repo_path
        self._repo: pygit2.Repository | None = None

    def __getstate__(self) -> dict[str, str]:
        return {"repo_path": self.repo_path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.repo_path, self._repo = state["repo_path"], None

    def __call__(self, ref: str, sha: str) -> str | None:
        if self._repo is None:
            self._repo = pygit2.Repository(self.repo_path)
        try:
            note = self._repo.lookup_note(sha, ref)
        except (KeyError, pygit2.GitError, ValueError):
            return None
        return str(note.message)
