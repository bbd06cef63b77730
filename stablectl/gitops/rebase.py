"""Rebase commits onto another commit in memory (what a forge's "rebase and merge" does)."""

from __future__ import annotations

import pygit2

from stablectl.errors import GitError


class RebaseConflict(GitError):
    def __init__(self, sha: str, paths: list[str]) -> None:
        self.sha, self.paths = sha, paths
        super().__init__(f"commit {sha[:12]} does not apply cleanly: {', '.join(paths)}")


def commits_between(repo: pygit2.Repository, base: str, head: str) -> list[pygit2.Commit]:
    """Commits reachable from `head` but not `base`, oldest first (first parents only)."""
    walker = repo.walk(pygit2.Oid(hex=head), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(pygit2.Oid(hex=base))
    walker.simplify_first_parent()
    return list(reversed(list(walker)))


def rebase(
    repo: pygit2.Repository,
    commits: list[pygit2.Commit],
    onto: str,
    committer: pygit2.Signature,
) -> str:
    """Apply each commit's first-parent change on top of `onto`, keeping author and message.
    Returns the new tip (not referenced by anything yet). Raises RebaseConflict."""
    tip = repo[pygit2.Oid(hex=onto)].peel(pygit2.Commit)
    for c in commits:
        if not c.parents:
            raise GitError(f"cannot rebase root commit {c.id}")
        index = repo.merge_trees(c.parents[0].tree, tip.tree, c.tree)
        if index.conflicts is not None:
            paths = sorted({(e.path) for entry in index.conflicts for e in entry if e is not None})
            raise RebaseConflict(str(c.id), paths)
        tree = index.write_tree(repo)
        if c.message_encoding:
            oid = repo.create_commit(
                None, c.author, committer, c.message, tree, [tip.id], c.message_encoding
            )
        else:
            oid = repo.create_commit(None, c.author, committer, c.message, tree, [tip.id])
        tip = repo[oid].peel(pygit2.Commit)
    return str(tip.id)
