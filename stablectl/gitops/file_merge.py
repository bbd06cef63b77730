"""Three-way merges of one file's blobs, as the picker's first lever makes them (libgit2's
file merge), remembered: a merge depends on the three blobs alone, and a far line's fix is
picked again onto tips where its files have not changed (after a fix before it turned out
clean, in a prerequisite set, from each of its sources): a third of its file merges."""

from __future__ import annotations

from typing import cast

import pygit2
from pygit2.enums import FileMode

from stablectl.gitops.pick_result import ConflictFile


class FileMerges:
    """One repository's file merges: (base, ours, theirs) blobs -> the merged blob, or why
    it conflicts."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._done: dict[tuple[pygit2.Oid, ...], pygit2.Oid | ConflictFile] = {}

    def merge(
        self,
        path: str,
        base: tuple[pygit2.Oid, int],
        ours: tuple[pygit2.Oid, int],
        theirs: tuple[pygit2.Oid, int],
    ) -> tuple[pygit2.Oid, int] | ConflictFile:
        if base[1] != ours[1] and base[1] != theirs[1] and ours[1] != theirs[1]:
            return ConflictFile(path, "mode", 1)
        mode = theirs[1] if ours[1] == base[1] else ours[1]
        if ours[0] == base[0]:
            return (theirs[0], mode)
        if theirs[0] == base[0]:
            return (ours[0], mode)
        key = (base[0], ours[0], theirs[0])
        merged = self._done.get(key)
        if merged is None:
            if len(self._done) >= 4096:
                self._done.clear()
            merged = self._done[key] = self._merge_blobs(path, base, ours, theirs)
        if isinstance(merged, ConflictFile):
            return ConflictFile(path, merged.kind, merged.hunks)
        return (merged, mode)

    def _merge_blobs(
        self,
        path: str,
        base: tuple[pygit2.Oid, int],
        ours: tuple[pygit2.Oid, int],
        theirs: tuple[pygit2.Oid, int],
    ) -> pygit2.Oid | ConflictFile:
        """libgit2's three-way merge of three blobs: the merged blob, or why it conflicts."""
        blobs = [cast(pygit2.Blob, self.repo[e[0]]) for e in (base, ours, theirs)]
        if any(b.is_binary for b in blobs):
            return ConflictFile(path, "binary", 1)
        try:
            for b in blobs:
                b.data.decode("utf-8")
        except UnicodeDecodeError:
            # libgit2's file merge returns text; leave non-UTF-8 files to the tree merge.
            return ConflictFile(path, "encoding", 1)
        res = self.repo.merge_file_from_index(
            pygit2.IndexEntry(path, base[0], FileMode(base[1])),
            pygit2.IndexEntry(path, ours[0], FileMode(ours[1])),
            pygit2.IndexEntry(path, theirs[0], FileMode(theirs[1])),
            use_deprecated=False,
        )
        if res is None:
            return ConflictFile(path, "binary", 1)
        if not res.automergeable:
            return ConflictFile(path, "content", count_hunks(res.contents))
        return self.repo.create_blob(res.contents.encode("utf-8"))


def count_hunks(contents: str) -> int:
    return sum(1 for line in contents.splitlines() if line.startswith("<<<<<<<"))
