"""Git trees without a work tree: read an entry, build a tree with some paths changed, keep
only part of one. What the picker, provenance and the history builder share."""

from __future__ import annotations

import pygit2
from pygit2.enums import FileMode

Entry = tuple[pygit2.Oid, int] | None  # (blob or tree id, mode); None: no such path
_TREE = int(FileMode.TREE)


def entry(tree: pygit2.Tree, path: str) -> Entry:
    try:
        obj = tree[path]
    except KeyError:
        return None
    return (obj.id, int(obj.filemode))


def new_or_kept(
    repo: pygit2.Repository, tree: pygit2.Tree, base: pygit2.Tree | None, keep: set[str]
) -> pygit2.Oid:
    """`tree` holding only the files `base` does not have (at that path, of that kind) and
    the paths in `keep`. A directory `base` lacks is taken whole, and one equal in both is
    entered only for a kept path: no file-by-file walk of two whole trees."""

    def walk(t: pygit2.Tree, b: pygit2.Tree | None, prefix: str) -> pygit2.Oid | None:
        builder = repo.TreeBuilder()
        for e in t:
            name = e.name or ""
            path = prefix + name
            other = b[name] if b is not None and name in b else None
            if isinstance(e, pygit2.Tree):
                if not isinstance(other, pygit2.Tree):
                    builder.insert(name, e.id, int(FileMode.TREE))
                    continue
                if e.id == other.id and not any(k.startswith(path + "/") for k in keep):
                    continue
                sub = walk(e, other, path + "/")
                if sub is not None:
                    builder.insert(name, sub, int(FileMode.TREE))
            elif other is None or isinstance(other, pygit2.Tree) or path in keep:
                builder.insert(name, e.id, int(e.filemode))
        return builder.write() if len(builder) else None

    return walk(tree, base, "") or repo.TreeBuilder().write()


def moved_dir(base: pygit2.Tree, ours: pygit2.Tree, path: str) -> bool:
    """The directory a new file goes into exists where the source was written but not on the
    tip it is picked onto: the tip has moved (renamed) it."""
    parent = path.rpartition("/")[0]
    if not parent:
        return False
    try:
        base[parent]
    except KeyError:
        return False
    try:
        ours[parent]
    except KeyError:
        return True
    return False


def is_blob(e: Entry) -> bool:
    return e is not None and e[1] in (int(FileMode.BLOB), int(FileMode.BLOB_EXECUTABLE))


def update_tree(
    repo: pygit2.Repository, tree: pygit2.Tree | pygit2.Oid | None, changes: dict[str, Entry]
) -> pygit2.Oid:
    """A new tree: `tree` with each path set to an entry (oid, mode) or removed (None).

    Only the trees along changed paths are rebuilt; untouched subtrees are shared, and no
    tree is read that the change does not go through.
    """
    oid, _ = _update_tree(repo, tree, changes)
    return oid


def _update_tree(
    repo: pygit2.Repository, tree: pygit2.Tree | pygit2.Oid | None, changes: dict[str, Entry]
) -> tuple[pygit2.Oid, int]:
    here: dict[str, Entry] = {}
    below: dict[str, dict[str, Entry]] = {}
    for path, entry in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            below.setdefault(head, {})[rest] = entry
        else:
            here[head] = entry
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, sub in below.items():
        existing = builder.get(name)
        subtree: pygit2.Oid | None = None
        if existing is not None and existing.filemode == _TREE:
            subtree = existing.id
        elif existing is not None:
            builder.remove(name)
        new_id, count = _update_tree(repo, subtree, sub)
        if count == 0:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, new_id, _TREE)
    for name, e in here.items():
        if e is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, e[0], e[1])
    return builder.write(), len(builder)
