"""`gitops.provenance`: the one answer verify, the merge gate, the manifest and `backport
--continue` use for "what is this commit". Verbatim means exact: any mutation of a verbatim
pick (a byte, a file added or removed, a mode, two lines swapped, whitespace, a line moved) is
an adaptation with a non-empty interdiff, however small; and a fork's tag is never upstream."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Provenance

SIG = pygit2.Signature("Upstream", "u@example.invalid", 1_700_000_000, 0)
LINES = [f"line {i}: value = {i * 7}\n" for i in range(12)]
FILES: dict[str, tuple[bytes, int]] = {
    "Lib/a.py": ("".join(LINES).encode(), pygit2.enums.FileMode.BLOB),
    "Lib/data.bin": (bytes(range(256)) * 4, pygit2.enums.FileMode.BLOB),
    "Tools/run.sh": (b"#!/bin/sh\necho run\n", pygit2.enums.FileMode.BLOB_EXECUTABLE),
    "Lib/empty.py": (b"", pygit2.enums.FileMode.BLOB),
}


@dataclass(frozen=True)
class World:
    path: str
    upstream_fix: str
    parent: str  # the stable branch before the backport
    verbatim: str  # the backport as the engine picks it


def _tree(repo: pygit2.Repository, files: dict[str, tuple[bytes, int]]) -> pygit2.Oid:
    index = pygit2.Index()
    for path, (data, mode) in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    return index.write_tree(repo)


@cache
def world() -> World:
    path = tempfile.mkdtemp(prefix="stablectl-provenance-")
    repo = pygit2.init_repository(path, bare=True)
    base = repo.create_commit(None, SIG, SIG, "base\n", _tree(repo, FILES), [])
    fixed = dict(FILES)
    lines = list(LINES)
    lines[3] = "line 3: value = checked(21)\n"
    fixed["Lib/a.py"] = ("".join(lines).encode(), pygit2.enums.FileMode.BLOB)
    fix = repo.create_commit(None, SIG, SIG, "gh-1: Check the value\n", _tree(repo, fixed), [base])
    repo.references.create("refs/remotes/upstream/main", fix)
    stable = dict(FILES)
    stable["Misc/stable.txt"] = (b"stable line\n", pygit2.enums.FileMode.BLOB)
    parent = repo.create_commit(None, SIG, SIG, "stable\n", _tree(repo, stable), [base])
    res = Picker(repo, Committer("s", "s@example.invalid", 1_700_000_100)).pick(
        str(fix), str(parent)
    )
    assert res.commit is not None
    return World(path, str(fix), str(parent), res.commit)


def _mutated(w: World, kind: str, i: int, j: int) -> str:
    repo = pygit2.Repository(w.path)
    c = repo[pygit2.Oid(hex=w.verbatim)].peel(pygit2.Commit)
    files = {e.path: (bytes(repo[e.id].data), e.mode) for e in _walk(repo, c.tree)}
    a_data, a_mode = files["Lib/a.py"]
    lines = a_data.decode().splitlines(keepends=True)
    i, j = i % len(lines), j % len(lines)
    if kind == "byte":
        data = bytearray(files["Lib/data.bin"][0])
        data[i * 17 % len(data)] ^= 1 + (j % 255)
        files["Lib/data.bin"] = (bytes(data), files["Lib/data.bin"][1])
    elif kind == "add":
        files[f"Lib/new_{i}.py"] = (b"x = %d\n" % j, pygit2.enums.FileMode.BLOB)
    elif kind == "add-empty":
        files[f"Lib/empty_{i}.py"] = (b"", pygit2.enums.FileMode.BLOB)
    elif kind == "remove":
        del files[sorted(files)[i % len(files)]]
    elif kind == "mode":
        name = sorted(files)[i % len(files)]
        data, mode = files[name]
        flipped = (
            pygit2.enums.FileMode.BLOB
            if mode == pygit2.enums.FileMode.BLOB_EXECUTABLE
            else pygit2.enums.FileMode.BLOB_EXECUTABLE
        )
        files[name] = (data, flipped)
    elif kind == "swap":
        if i == j:
            j = (i + 1) % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "whitespace":
        lines[i] = lines[i].rstrip("\n") + " \n"
    elif kind == "move":
        if i == j:
            j = (i + 2) % len(lines)
        lines.insert(j, lines.pop(i))
    if kind in ("swap", "whitespace", "move"):
        files["Lib/a.py"] = ("".join(lines).encode(), a_mode)
    tree = _tree(repo, files)
    assert tree != c.tree.id, kind
    return str(repo.create_commit(None, SIG, SIG, c.message, tree, [c.parents[0].id]))


def _walk(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> list[pygit2.IndexEntry]:
    out = []
    for e in tree:
        name = f"{prefix}{e.name}"
        if e.type_str == "tree":
            out += _walk(repo, repo[e.id].peel(pygit2.Tree), f"{name}/")
        else:
            out.append(pygit2.IndexEntry(name, e.id, e.filemode))
    return out


def _provenance(w: World) -> Provenance:
    """A fresh answer each time: nothing remembered between examples."""
    repo = pygit2.Repository(w.path)
    return Provenance(repo, (), lambda: Picker(repo, Committer("v", "v@example.invalid")))


def test_the_engines_pick_is_verbatim() -> None:
    w = world()
    r = _provenance(w).explain(w.verbatim)
    assert (r.source, r.origin, r.repick) == (w.upstream_fix, "upstream", "clean")
    assert r.verbatim and r.change.empty and r.change.digest == ""


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(
        ["byte", "add", "add-empty", "remove", "mode", "swap", "whitespace", "move"]
    ),
    i=st.integers(0, 50),
    j=st.integers(0, 50),
)
def test_every_mutation_of_a_verbatim_pick_is_an_adaptation(kind: str, i: int, j: int) -> None:
    w = world()
    mutated = _mutated(w, kind, i, j)
    r = _provenance(w).explain(mutated)
    assert r.source == w.upstream_fix
    assert not r.verbatim and r.adapted, (kind, i, j)
    assert r.change.lines >= 1 and len(r.change.digest) == 64
    # The digest is of the exact change: the same mutation gives the same digest, always.
    assert _provenance(w).explain(mutated).change.digest == r.change.digest


def test_a_commit_only_the_fork_has_is_not_upstream(tmp_path: Path) -> None:
    w = world()
    repo = pygit2.Repository(w.path)
    c = repo[pygit2.Oid(hex=w.verbatim)].peel(pygit2.Commit)
    planted = repo.create_commit(None, SIG, SIG, "planted\n", c.tree.id, [c.parents[0].id])
    # The fork's tags and branches live in their own namespaces: never evidence of upstream.
    repo.references.create("refs/fork-tags/v9.9.9", planted, force=True)
    repo.references.create("refs/tags/v9.9.9", planted, force=True)
    msg = f"planted\n\n(cherry picked from commit {planted})\n"
    picked = repo.create_commit(None, SIG, SIG, msg, c.tree.id, [c.parents[0].id])
    r = _provenance(w).explain(str(picked))
    assert r.named == (str(planted),) and r.source is None and not r.verbatim
