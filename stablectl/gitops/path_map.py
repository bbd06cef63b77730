"""A line's path map: where upstream's paths live on a stable line (`dir/` prefixes or exact
files, a series' `path_map`), for picks and applicability alike."""

from __future__ import annotations

from collections.abc import Mapping

import pygit2

from stablectl.gitops.trees import Entry, entry, update_tree


def map_path(path_map: Mapping[str, str], path: str) -> str:
    """Where upstream's `path` lives on a line with this path map (`dir/` prefixes or exact
    files): the one rule picks and applicability share."""
    for old, new in path_map.items():
        if old.endswith("/") and path.startswith(old):
            return new + path[len(old) :]
        if path == old:
            return new
    return path


def remapped(
    repo: pygit2.Repository, path_map: Mapping[str, str], source: pygit2.Commit
) -> pygit2.Commit:
    """The source as if written against the stable line's layout: a synthetic commit
    (and parent) whose changed paths under a mapped prefix or file sit at their stable
    names. The source itself when nothing it changes is mapped."""
    parent = source.parents[0]
    moves: dict[str, str] = {}
    for d in parent.tree.diff_to_tree(source.tree).deltas:
        for p in (d.old_file.path, d.new_file.path):
            q = map_path(path_map, p)
            if q != p:
                moves[p] = q
    if not moves:
        return source

    def moved(tree: pygit2.Tree) -> pygit2.Oid:
        changes: dict[str, Entry] = {}
        for p, q in moves.items():
            e = entry(tree, p)
            if e is not None:
                changes[p] = None
                changes[q] = e
        return update_tree(repo, tree, changes) if changes else tree.id

    sig = pygit2.Signature("stablectl", "stablectl@localhost", 0, 0)
    base = repo.create_commit(
        None, sig, sig, "stablectl: remapped base", moved(parent.tree), [parent.id]
    )
    oid = repo.create_commit(None, source.author, sig, source.message, moved(source.tree), [base])
    return repo[oid].peel(pygit2.Commit)
