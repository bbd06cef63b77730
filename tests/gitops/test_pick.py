from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablectl.gitops.history import History, lines
from stablectl.gitops.messages import CHERRY_PREFIX
from stablectl.gitops.objects import commit as get_commit
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.trees import update_tree

COMMITTER = Committer("stablectl", "bot@example.org", time=1_700_000_000)


def _edit(text: str, i: int, new: str) -> str:
    ls = text.splitlines(keepends=True)
    ls[i] = new + "\n"
    return "".join(ls)


@pytest.fixture
def hist(tmp_path: Path) -> History:
    h = History(tmp_path / "repo.git")
    h.commit(
        "main",
        "base",
        {"a.txt": lines(30, "a"), "d/b.txt": lines(30, "b"), "d/e/c.txt": lines(10, "c")},
    )
    return h


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def test_clean_pick_keeps_author_and_adds_trailer(hist: History) -> None:
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    hist.commit("stable", "stable change", {"a.txt": _edit(hist.read("main", "a.txt"), 2, "S")})
    src = hist.commit(
        "main",
        "gh-1: fix (#2)",
        {"a.txt": _edit(hist.read("main", "a.txt"), 20, "F"), "d/e/new.txt": "new\n"},
    )
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick(src, tip)
    assert res.outcome == "clean" and res.lever == "paths"
    assert res.commit
    c = get_commit(hist.repo, res.commit)
    s = get_commit(hist.repo, src)
    assert c.author.name == s.author.name and c.author.time == s.author.time
    assert c.committer.email == "bot@example.org"
    assert [str(p) for p in c.parent_ids] == [tip]
    assert c.message.endswith(f"\n\n{CHERRY_PREFIX}{src})\n")
    text = bytes(hist.repo[c.tree["a.txt"].id].data).decode()  # type: ignore[attr-defined]
    assert "S\n" in text and "F\n" in text
    assert "d/e/new.txt" in c.tree
    # Untouched subtrees are shared, not rebuilt.
    assert c.tree["d/b.txt"].id == get_commit(hist.repo, tip).tree["d/b.txt"].id


def test_empty_when_already_applied(hist: History) -> None:
    base = hist.tip("main")
    assert base
    src = hist.commit("main", "fix", {"a.txt": _edit(hist.read("main", "a.txt"), 5, "X")})
    hist.branch("stable", base)
    hist.commit("stable", "same fix", {"a.txt": _edit(hist.read("stable", "a.txt"), 5, "X")})
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick(src, tip)
    assert res.outcome == "empty" and res.commit is None


def test_conflict_reports_paths_and_hunks(hist: History) -> None:
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    t = hist.read("main", "a.txt")
    hist.commit("stable", "s", {"a.txt": _edit(_edit(t, 3, "S1"), 20, "S2")})
    src = hist.commit(
        "main",
        "m",
        {
            "a.txt": _edit(_edit(t, 3, "M1"), 20, "M2"),
            "d/b.txt": _edit(hist.read("main", "d/b.txt"), 1, "ok"),
        },
    )
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER, use_ort=False).pick(src, tip)
    assert res.outcome == "conflict"
    assert [(c.path, c.kind, c.hunks) for c in res.conflicts] == [("a.txt", "content", 2)]
    assert res.commit is None


def test_modify_delete_conflict(hist: History) -> None:
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    hist.commit("stable", "drop", {"d/e/c.txt": None})
    src = hist.commit("main", "m", {"d/e/c.txt": _edit(hist.read("main", "d/e/c.txt"), 1, "M")})
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick(src, tip)
    assert res.outcome == "conflict"
    assert res.conflicts[0].path == "d/e/c.txt"


def test_rename_on_stable_side_resolved_by_tree_merge(hist: History) -> None:
    """The stable side renamed the file the fix touches: the path lever conflicts
    (modify/delete), libgit2's rename-aware tree merge places the change."""
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    hist.commit("stable", "rename", {"a.txt": None, "renamed.txt": hist.read("main", "a.txt")})
    src = hist.commit("main", "fix", {"a.txt": _edit(hist.read("main", "a.txt"), 10, "FIX")})
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick(src, tip)
    assert res.outcome == "clean" and res.lever == "libgit2"
    assert res.commit
    tree = get_commit(hist.repo, res.commit).tree
    assert "a.txt" not in tree
    assert b"FIX\n" in bytes(hist.repo[tree["renamed.txt"].id].data)  # type: ignore[attr-defined]


def test_ort_lever_alone_matches_git(hist: History, tmp_path: Path) -> None:
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    hist.commit("stable", "s", {"a.txt": _edit(hist.read("main", "a.txt"), 2, "S")})
    src = hist.commit("main", "m", {"a.txt": _edit(hist.read("main", "a.txt"), 25, "M")})
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER, levers=("ort",)).pick(src, tip)
    assert res.outcome == "clean" and res.lever == "ort"
    fast = Picker(hist.repo, COMMITTER, levers=("paths",)).pick(src, tip)
    assert fast.tree == res.tree


def test_missing_source_is_an_error(hist: History) -> None:
    tip = hist.tip("main")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick("0" * 40, tip)
    assert res.outcome == "error" and "missing" in (res.error or "")


def test_merge_commit_is_an_error(hist: History) -> None:
    base = hist.tip("main")
    assert base
    hist.branch("side", base)
    side = hist.commit("side", "s", {"x": "1\n"})
    main = hist.commit("main", "m", {"y": "1\n"})
    repo = hist.repo
    sig = pygit2.Signature("t", "t@e", 1, 0)
    tree = get_commit(repo, side).tree.id
    merge = str(
        repo.create_commit(
            None, sig, sig, "merge", tree, [pygit2.Oid(hex=main), pygit2.Oid(hex=side)]
        )
    )
    res = Picker(repo, COMMITTER).pick(merge, base)
    assert res.outcome == "error" and "merge commit" in (res.error or "")


def test_update_tree_removes_empty_directories(hist: History) -> None:
    c = get_commit(hist.repo, hist.tip("main") or "")
    new = update_tree(hist.repo, c.tree, {"d/e/c.txt": None})
    t = hist.repo[new]
    assert "d/e" not in t  # type: ignore[operator]
    assert "d/b.txt" in t  # type: ignore[operator]


# ------------------------------------------------------------ agreement with git cherry-pick

EDIT = st.tuples(st.integers(0, 29), st.sampled_from(["X", "Y", "Z"]))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ours=st.lists(EDIT, max_size=3),
    theirs=st.lists(EDIT, min_size=1, max_size=3),
    add_file=st.booleans(),
    delete_b=st.booleans(),
)
def test_pick_agrees_with_git_cherry_pick(
    tmp_path_factory: pytest.TempPathFactory,
    ours: list[tuple[int, str]],
    theirs: list[tuple[int, str]],
    add_file: bool,
    delete_b: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("agree")
    h = History(tmp / "repo.git")
    a0 = lines(30, "a")
    base = h.commit("main", "base", {"a.txt": a0, "d/b.txt": lines(5, "b")})
    h.branch("stable", base)
    text = a0
    for i, v in ours:
        text = _edit(text, i, f"ours {v}")
    h.commit("stable", "ours", {"a.txt": text})
    text = a0
    for i, v in theirs:
        text = _edit(text, i, f"theirs {v}")
    files: dict[str, str | None] = {"a.txt": text}
    if add_file:
        files["d/new.txt"] = "new\n"
    if delete_b:
        files["d/b.txt"] = None
    src = h.commit("main", "theirs", files)
    tip = h.tip("stable")
    assert tip
    res = Picker(h.repo, COMMITTER).pick(src, tip)
    wt = tmp / "wt"
    subprocess.run(["git", "clone", "-q", "-b", "stable", str(h.path), str(wt)], check=True)
    proc = subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "cherry-pick",
            "-x",
            "--allow-empty",
            "--keep-redundant-commits",
            src,
        ],
        cwd=wt,
        capture_output=True,
        text=True,
        check=False,
    )
    git_clean = proc.returncode == 0
    assert res.ok == git_clean, (res, proc.stdout, proc.stderr)
    if git_clean:
        assert res.tree == git(wt, "rev-parse", "HEAD^{tree}")


def test_a_file_added_to_a_directory_the_stable_side_moved_follows_it(hist: History) -> None:
    """Found replaying systemd v239-stable: upstream adds fuzz reproducers under test/fuzz/,
    which v239 still calls test/fuzz-regressions/; the maintainers put them there. The paths
    lever would add them under the old name (so would libgit2): git's merge with directory
    renames applied is used instead."""
    base = hist.commit("main", "corpus", {"test/fuzz/a": "a\n", "src/x.c": lines(10, "x")})
    hist.branch("stable", base)
    hist.commit("stable", "rename corpus", {"test/fuzz/a": None, "test/fuzz-regressions/a": "a\n"})
    fix = hist.commit(
        "main",
        "bus-message: fix a crash",
        {"test/fuzz/crash-1": "boom\n", "src/x.c": _edit(lines(10, "x"), 3, "fixed")},
    )
    r = Picker(hist.repo, COMMITTER).pick(fix, hist.tip("stable") or "")
    assert r.outcome == "clean" and r.commit is not None and r.lever == "ort"
    tree = get_commit(hist.repo, r.commit).tree
    assert "test/fuzz-regressions/crash-1" in tree and "test/fuzz" not in tree
    assert "fixed" in hist.read(r.commit, "src/x.c")
    # Without git's merge (ort off) the old behaviour remains: added where upstream put it.
    r2 = Picker(hist.repo, COMMITTER, use_ort=False).pick(fix, hist.tip("stable") or "")
    assert r2.outcome == "clean" and r2.commit is not None
    assert "test/fuzz/crash-1" in get_commit(hist.repo, r2.commit).tree


def test_path_map_puts_upstream_paths_where_the_stable_line_keeps_them(hist: History) -> None:
    """Upstream merged test/fuzz-corpus/ and test/fuzz-regressions/ into test/fuzz/ (systemd,
    after v239) and split Lib/test/test_zipfile.py into a package (CPython 3.12): no merge can
    guess where a backport's files go (a split has no single rename to detect); a series'
    `path_map` says it."""
    big = lines(10, "t") + lines(40, "other")
    base = hist.commit(
        "main",
        "upstream layout",
        {
            "test/fuzz/x/seed": "s\n",
            "test/fuzz/y/crash-0": "c\n",
            "Lib/test/test_zipfile/test_core.py": lines(10, "t"),
        },
    )
    hist.branch("stable", base)
    hist.commit(
        "stable",
        "the stable line's layout",
        {
            "test/fuzz/x/seed": None,
            "test/fuzz/y/crash-0": None,
            "test/fuzz-corpus/x/seed": "s\n",
            "test/fuzz-regressions/y/crash-0": "c\n",
            "Lib/test/test_zipfile/test_core.py": None,
            "Lib/test/test_zipfile.py": big,
        },
    )
    fix = hist.commit(
        "main",
        "fix a crash, with its reproducer and a test",
        {
            "test/fuzz/y/crash-1": "boom\n",
            "Lib/test/test_zipfile/test_core.py": _edit(lines(10, "t"), 5, "new test"),
        },
    )
    tip = hist.tip("stable") or ""
    plain = Picker(hist.repo, COMMITTER).pick(fix, tip)
    assert plain.outcome == "conflict"  # the test file is elsewhere here
    mapped = Picker(
        hist.repo,
        COMMITTER,
        path_map={
            "test/fuzz/": "test/fuzz-regressions/",
            "Lib/test/test_zipfile/test_core.py": "Lib/test/test_zipfile.py",
        },
    ).pick(fix, tip)
    assert mapped.outcome == "clean" and mapped.commit is not None and mapped.source == fix
    tree = get_commit(hist.repo, mapped.commit).tree
    assert "test/fuzz-regressions/y/crash-1" in tree and "test/fuzz" not in tree
    merged = hist.read(mapped.commit, "Lib/test/test_zipfile.py")
    assert "new test" in merged and merged.endswith(lines(40, "other"))
    # The commit is the source's: its message, author and trailer name the real commit.
    c = get_commit(hist.repo, mapped.commit)
    assert c.message.rstrip().endswith(f"{CHERRY_PREFIX}{fix})")
    assert c.parents[0].id == pygit2.Oid(hex=tip)


def test_a_conflict_is_reported_by_the_best_merge_method(hist: History) -> None:
    """libgit2 refuses to merge an ISO-8859-1 file ("encoding"); git's ort merges it. A pick
    that also conflicts for real reports only what git leaves conflicting."""
    latin = "".join(f"ligne {i}: caf\xe9\n" for i in range(20)).encode("latin-1")
    base = hist.commit("main", "latin", {"Lib/latin.py": latin})
    hist.branch("stable", base)
    hist.commit(
        "stable",
        "stable side",
        {
            "Lib/latin.py": latin.replace(b"ligne 2:", b"LIGNE 2:"),
            "a.txt": _edit(hist.read("main", "a.txt"), 5, "stable"),
        },
    )
    src = hist.commit(
        "main",
        "gh-3: fix (#4)",
        {
            "Lib/latin.py": latin.replace(b"ligne 15:", b"LIGNE 15:"),
            "a.txt": _edit(hist.read("main", "a.txt"), 5, "upstream"),
        },
    )
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER).pick(src, tip)
    assert res.outcome == "conflict"
    assert [(c.path, c.kind) for c in res.conflicts] == [("a.txt", "content")]
    assert res.lever == "ort" and res.marked_tree


@pytest.mark.parametrize("conflict", [False, True])
def test_ort_on_trimmed_trees_is_git_s_whole_tree_merge(hist: History, conflict: bool) -> None:
    """The stable side moved the file the fix changes (and has files upstream never had):
    ort's merge of trees trimmed to the fix's paths and the tip's own files finds the rename
    and gives the tree git's merge of the whole trees gives (or the same conflicting files)."""
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    moved = _edit(hist.read("main", "a.txt"), 2, "STABLE")
    files: dict[str, str | None] = {"a.txt": None, "old/renamed.txt": moved}
    files.update({f"only/stable{i}.txt": lines(5, f"s{i}") for i in range(20)})
    if conflict:
        files["d/b.txt"] = _edit(hist.read("main", "d/b.txt"), 4, "STABLE B")
    hist.commit("stable", "move", files)
    fix: dict[str, str | None] = {"a.txt": _edit(hist.read("main", "a.txt"), 20, "FIX")}
    fix["d/b.txt"] = _edit(hist.read("main", "d/b.txt"), 4, "FIX B")
    src = hist.commit("main", "fix", fix)
    tip = hist.tip("stable")
    assert tip
    res = Picker(hist.repo, COMMITTER, levers=("ort",)).pick(src, tip)
    source = get_commit(hist.repo, src)
    sig = pygit2.Signature("t", "t@e", 0, 0)
    ours = hist.repo.create_commit(
        None, sig, sig, "ours", get_commit(hist.repo, tip).tree.id, [source.parents[0].id]
    )
    proc = subprocess.run(
        [
            *("git", "--git-dir", str(hist.path), "merge-tree", "--write-tree"),
            *("--name-only", "--no-messages", str(ours), src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    whole, *conflicting = proc.stdout.split()
    assert res.lever == "ort"
    if conflict:
        assert res.outcome == "conflict" and [c.path for c in res.conflicts] == conflicting
        assert conflicting == ["d/b.txt"]
    else:
        assert res.outcome == "clean" and res.tree == whole
        tree = hist.repo[whole].peel(pygit2.Tree)
        assert "a.txt" not in tree and "only/stable7.txt" in tree
        assert b"FIX\n" in bytes(hist.repo[tree["old/renamed.txt"].id].data)  # type: ignore[attr-defined]


def test_an_outcome_only_pick_stops_at_a_content_conflict(hist: History) -> None:
    """A later source whose conflicts nobody reads: a file's content conflicting where the tip
    has it is a conflict for every method, so git's merge is not run; a moved file still is
    (it may apply), and the memoised full pick is not replaced by the short one."""
    base = hist.tip("main")
    assert base
    hist.branch("stable", base)
    t = hist.read("main", "a.txt")
    hist.commit("stable", "s", {"a.txt": _edit(t, 3, "S1")})
    content = hist.commit("main", "m", {"a.txt": _edit(t, 3, "M1")})
    tip = hist.tip("stable")
    assert tip
    picker = Picker(hist.repo, COMMITTER)
    short = picker.pick(content, tip, outcome_only=True)
    assert short.outcome == "conflict" and short.lever == "paths"
    assert short.marked_tree is None  # git's merge did not run
    full = picker.pick(content, tip)
    assert full.outcome == "conflict" and full.marked_tree is not None
    assert [c.path for c in short.conflicts] == [c.path for c in full.conflicts] == ["a.txt"]

    hist.commit("stable", "move", {"d/e/c.txt": None, "d/moved.txt": lines(10, "c")})
    moved = hist.commit("main", "fix c", {"d/e/c.txt": _edit(lines(10, "c"), 2, "FIX")})
    tip = hist.tip("stable")
    assert tip
    res = picker.pick(moved, tip, outcome_only=True)
    assert res.ok and res.lever != "paths"
