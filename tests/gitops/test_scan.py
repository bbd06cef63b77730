from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from stablectl.gitops import diffs
from stablectl.gitops.diffs import bulk_changed_paths, changed_paths
from stablectl.gitops.history import History, lines
from stablectl.gitops.scan import CommitIndex
from stablectl.gitops.trees import update_tree


def _history(tmp_path: Path) -> tuple[History, list[str]]:
    """Forty commits of every shape a tree diff has: a root, edits, additions in new
    directories, deletions, a file turned into a symlink (a type change), a merge."""
    h = History(tmp_path / "repo.git")
    shas = [h.commit("main", "root", {"a.txt": lines(5, "a"), "d/b.txt": "b\n", "l": "x\n"})]
    for i in range(36):
        files: dict[str, str | None] = {f"n{i % 7}/f{i}.txt": f"{i}\n", "a.txt": lines(5, f"{i}")}
        if i % 5 == 4:
            files[f"n{(i - 1) % 7}/f{i - 1}.txt"] = None
        shas.append(h.commit("main", f"change {i}", files))
    repo = h.repo
    tip = repo[shas[-1]].peel(pygit2.Commit)
    link = repo.create_blob(b"a.txt")
    t = update_tree(repo, tip.tree, {"l": (link, int(FileMode.LINK))})
    sig = pygit2.Signature("t", "t@e", 1_700_000_000, 0)
    shas.append(str(repo.create_commit("refs/heads/main", sig, sig, "typechange\n", t, [tip.id])))
    h.branch("side", shas[3])
    side = h.commit("side", "side", {"side.txt": "s\n", "d/b.txt": "B\n"})
    main = repo[shas[-1]].peel(pygit2.Commit)
    merged = update_tree(
        repo, main.tree, {"side.txt": (repo.create_blob(b"s\n"), int(FileMode.BLOB))}
    )
    shas.append(
        str(repo.create_commit("refs/heads/main", sig, sig, "merge\n", merged, [main.id, side]))
    )
    return h, [*shas, side]


def test_one_git_log_gives_the_tree_diffs_changed_paths(tmp_path: Path) -> None:
    h, shas = _history(tmp_path)
    bulk = bulk_changed_paths(h.repo.path, shas)
    assert set(bulk) == set(shas)
    for sha in shas:
        deleted: set[str] = set()
        paths, truncated = changed_paths(h.repo, h.repo[sha].peel(pygit2.Commit), deleted)
        assert bulk[sha] == (paths, truncated, deleted), sha
    typechange = bulk[shas[-3]]
    assert typechange == (["l", "l"], False, {"l"})
    assert bulk[shas[-2]][0] == ["side.txt"]  # a merge: against its first parent


def test_prefetched_facts_equal_facts_computed_one_by_one(tmp_path: Path) -> None:
    h, shas = _history(tmp_path)
    ahead = CommitIndex(h.repo, tmp_path / "index.sqlite")
    ahead.prefetch(shas)
    one = CommitIndex(h.repo, None)
    for sha in shas:
        assert ahead.facts(sha) == one.facts(sha)
    assert ahead.stats["facts_computed"] == ahead.stats["paths_in_bulk"] == len(shas)


def test_an_unknown_commit_leaves_the_diffs_to_libgit2(tmp_path: Path) -> None:
    h, shas = _history(tmp_path)
    assert bulk_changed_paths(h.repo.path, [*shas, "0" * 40]) == {}


def test_each_fetch_of_upstream_leaves_a_commit_graph_with_changed_paths(tmp_path: Path) -> None:
    from stablectl.gitops.cache import RepoCache

    h, _ = _history(tmp_path)
    cache = RepoCache.open_or_init(tmp_path / "cache.git")
    cache.fetch_upstream(str(h.path))
    chain = tmp_path / "cache.git" / "objects" / "info" / "commit-graphs" / "commit-graph-chain"
    assert chain.read_text().split()
    h.commit("main", "later", {"later.txt": "l\n"})
    cache.fetch_upstream(str(h.path))
    layers = chain.read_text().split()
    assert layers
    graphs = [(chain.parent / f"graph-{layer}.graph").read_bytes() for layer in layers]
    assert any(b"BIDX" in g and b"BDAT" in g for g in graphs)  # the Bloom filter chunks


def test_merge_base_is_libgit2s_whether_git_or_libgit2_answers(tmp_path: Path) -> None:
    """git answers when the merge base is the only one; with two (a criss-cross merge),
    libgit2 chooses, as it always did."""
    h = History(tmp_path / "up.git")
    root = h.commit("main", "root", {"a": "1\n"})
    h.branch("x", root)
    m1 = h.commit("main", "m1", {"b": "1\n"})
    x1 = h.commit("x", "x1", {"c": "1\n"})
    repo = h.repo
    sig = pygit2.Signature("t", "t@localhost", 1_600_000_000, 0)

    def merge(first: str, second: str) -> str:
        tree = repo.merge_commits(first, second).write_tree(repo)
        parents = [pygit2.Oid(hex=first), pygit2.Oid(hex=second)]
        return str(repo.create_commit(None, sig, sig, "merge", tree, parents))

    cross_a, cross_b = merge(m1, x1), merge(x1, m1)
    index = CommitIndex(repo, None)
    for a, b in [(m1, x1), (cross_a, x1), (cross_a, cross_b), (root, m1)]:
        assert index.merge_base(a, b) == str(repo.merge_base(a, b))
    assert index._only_merge_base(cross_a, cross_b) is None  # two: left to libgit2
    assert index._only_merge_base(m1, x1) == root


def test_gits_side_by_side_read_what_one_git_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, shas = _history(tmp_path)
    one = bulk_changed_paths(h.repo.path, shas, jobs=1)
    monkeypatch.setattr(diffs, "_SHARE_MIN", 5)
    shared = bulk_changed_paths(h.repo.path, shas, jobs=3)
    assert shared == one and list(shared) == list(one)
    # A share git cannot read (an unknown commit) leaves every commit to libgit2.
    assert bulk_changed_paths(h.repo.path, [*shas[:-1], "0" * 40], jobs=3) == {}


def test_patch_ids_computed_in_workers_equal_those_computed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A far line's selection needs hundreds of patch-ids: they are computed side by side in
    worker processes, the same as here, and kept (the index does not compute them again)."""
    from stablectl.gitops import scan

    h = History(tmp_path / "repo.git")
    shas = [h.commit("main", "root", {"a.txt": lines(5, "a")})]
    for i in range(70):
        shas.append(h.commit("main", f"change {i}", {"a.txt": lines(5, f"{i}"), f"{i}": "x\n"}))
    shas.append("0" * 40)  # not a commit: None, as here
    here = CommitIndex(h.repo, None)
    expected = {sha: here.patch_id(sha) for sha in shas}
    assert len({v for v in expected.values() if v}) == 71

    def not_here(*args: object) -> str:
        raise AssertionError("computed in this process")

    monkeypatch.setattr(scan, "commit_patch_id", not_here)
    index = CommitIndex(h.repo, tmp_path / "index.sqlite")
    index.prefetch_patch_ids(shas)
    assert {sha: index.patch_id(sha) for sha in shas} == expected
    index.close()
    again = CommitIndex(h.repo, tmp_path / "index.sqlite")  # and kept in sqlite
    again.prefetch_patch_ids(shas)
    assert {sha: again.patch_id(sha) for sha in shas} == expected
