from __future__ import annotations

from pathlib import Path

import pygit2
from pygit2.enums import FileMode

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
