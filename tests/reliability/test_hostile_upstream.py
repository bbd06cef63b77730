"""Odd or hostile upstream content has a defined outcome (and never a traceback): a forged
`(cherry picked from commit …)` naming nothing, huge diffs, binary files, submodule bumps,
rename/delete conflicts, non-UTF-8 messages, CRLF files. Rewritten branches, moved tags and
missing objects: tests/controller/test_plan.py (refused with a clear error; a per-commit error)."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from stablectl.controller.demo import Example
from stablectl.controller.workspace import Workspace
from stablectl.gitops.history import History, lines
from stablectl.gitops.objects import commit as get_commit
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.trees import update_tree
from stablectl.policy import load_policy_text

COMMITTER = Committer("stablectl", "bot@example.org", time=1_700_000_000)
GITLINK = 0o160000


@pytest.fixture
def hist(tmp_path: Path) -> History:
    h = History(tmp_path / "repo.git")
    h.commit("main", "base", {"a.txt": lines(30, "a"), "d/b.txt": lines(30, "b")})
    h.branch("stable", h.tip("main") or "")
    return h


def pick(h: History, sha: str, onto: str) -> object:
    return Picker(h.repo, COMMITTER).pick(sha, onto)


def test_huge_diff_picks_cleanly(hist: History) -> None:
    files: dict[str, str | bytes | None] = {f"gen/f{i:04d}.txt": f"{i}\n" for i in range(3000)}
    files["big.bin"] = bytes(range(256)) * 40_000  # 10 MB
    sha = hist.commit("main", "gh-1: regenerate everything", files)
    r = Picker(hist.repo, COMMITTER).pick(sha, hist.tip("stable") or "")
    assert r.outcome == "clean" and r.commit is not None
    tree = get_commit(hist.repo, r.commit).tree
    assert tree["gen/f2999.txt"].id == get_commit(hist.repo, sha).tree["gen/f2999.txt"].id


def test_binary_files_pick_and_conflict_without_markers(hist: History) -> None:
    blob1, blob2 = b"\x00\x01BIN" * 100, b"\x00\x02BIN" * 100
    base = hist.commit("main", "add binary", {"x.bin": blob1})
    hist.branch("stable", base)
    up = hist.commit("main", "gh-2: update binary", {"x.bin": blob2})
    r = Picker(hist.repo, COMMITTER).pick(up, base)
    assert r.outcome == "clean"
    other = hist.commit("stable", "local binary change", {"x.bin": b"\x00\x03BIN" * 100})
    r = Picker(hist.repo, COMMITTER).pick(up, other)
    assert r.outcome == "conflict" and [c.path for c in r.conflicts] == ["x.bin"]
    assert r.commit is None  # nothing half-merged is written as a result


def _gitlink(h: History, branch: str, message: str, target: str) -> str:
    parent = get_commit(h.repo, h.tip(branch) or "")
    tree = update_tree(h.repo, parent.tree, {"vendor/lib": (pygit2.Oid(hex=target), GITLINK)})
    sig = pygit2.Signature("a", "a@example.org", 1_700_000_100, 0)
    return str(h.repo.create_commit(f"refs/heads/{branch}", sig, sig, message, tree, [parent.id]))


def test_submodule_bumps_pick_as_gitlinks(hist: History) -> None:
    pygit2.settings.enable_strict_object_creation(False)  # gitlinks name other repositories
    try:
        first = _gitlink(hist, "main", "add submodule", "1" * 40)
        hist.branch("stable", first)
        bump = _gitlink(hist, "main", "gh-3: bump vendor/lib", "2" * 40)
        r = Picker(hist.repo, COMMITTER).pick(bump, first)
        assert r.outcome == "clean" and r.commit is not None
        entry = get_commit(hist.repo, r.commit).tree["vendor/lib"]
        assert entry.filemode == GITLINK and str(entry.id) == "2" * 40
        other = _gitlink(hist, "stable", "stable bumps it elsewhere", "3" * 40)
        r = Picker(hist.repo, COMMITTER).pick(bump, other)
        assert r.outcome == "conflict" and [c.path for c in r.conflicts] == ["vendor/lib"]
    finally:
        pygit2.settings.enable_strict_object_creation(True)


def test_rename_upstream_delete_on_stable_is_a_conflict(hist: History) -> None:
    base = hist.tip("main") or ""
    text = hist.read(base, "a.txt")
    up = hist.commit("main", "gh-4: move and fix a", {"a.txt": None, "new/a.txt": text + "fix\n"})
    gone = hist.commit("stable", "stable drops a.txt", {"a.txt": None})
    r = Picker(hist.repo, COMMITTER).pick(up, gone)
    assert r.outcome in ("conflict", "clean")
    if r.outcome == "conflict":
        assert {c.path for c in r.conflicts} <= {"a.txt", "new/a.txt"}
    else:  # resolved as "the file moves and is fixed": the fix must be there
        assert r.commit is not None
        assert "fix" in hist.read(r.commit, "new/a.txt")


def test_crlf_files_keep_their_line_endings(hist: History) -> None:
    crlf = "".join(f"line {i}\r\n" for i in range(20))
    base = hist.commit("main", "add crlf", {"w.bat": crlf})
    hist.branch("stable", base)
    hist.commit("stable", "stable edits the top", {"w.bat": "top\r\n" + crlf})
    fixed = crlf.replace("line 15\r\n", "line 15 fixed\r\n")
    up = hist.commit("main", "gh-5: fix line 15", {"w.bat": fixed})
    r = Picker(hist.repo, COMMITTER).pick(up, hist.tip("stable") or "")
    assert r.outcome == "clean" and r.commit is not None
    out = hist.read(r.commit, "w.bat")
    assert out == "top\r\n" + fixed and "\n" not in out.replace("\r\n", "")


def test_forged_trailer_and_non_utf8_message_plan_without_error(
    example: Example, tmp_path: Path
) -> None:
    """A security fix whose trailer names a commit that exists nowhere, and one whose message
    is Latin-1 (declared with an `encoding` header): both are flagged and picked; the forged
    name is just an identity (`verify` reports it if it ever lands on a stable branch)."""
    up = History(example.upstream, clock=2_000_000_000)
    forged = up.commit(
        "main",
        "gh-2970: Reject brackets (#2971)\n\n(cherry picked from commit "
        "0123456789abcdef0123456789abcdef01234567)",
        {"Lib/forged.py": "x = 1\n", "Misc/NEWS.d/next/Security/forged.rst": "forged\n"},
    )
    parent = get_commit(up.repo, up.tip("main") or "")
    tree = update_tree(
        up.repo,
        parent.tree,
        {
            "Lib/latin.py": (up.repo.create_blob(b"y = 1\n"), 0o100644),
            "Misc/NEWS.d/next/Security/latin.rst": (up.repo.create_blob(b"l\n"), 0o100644),
        },
    )
    raw = (
        f"tree {tree}\nparent {parent.id}\n"
        "author Jos\xe9 <j@example.org> 2000000500 +0000\n"
        "committer Jos\xe9 <j@example.org> 2000000500 +0000\n"
        "encoding ISO-8859-1\n\n"
        "gh-2980: Corrige l'analyse (caf\xe9) (#2981)\n"
    ).encode("latin-1")
    latin = str(up.repo.odb.write(pygit2.enums.ObjectType.COMMIT, raw))
    up.repo.references.create("refs/heads/main", pygit2.Oid(hex=latin), force=True)
    eng = Workspace(load_policy_text(example.policy_yaml()), tmp_path / "state", committer_time=1)
    try:
        eng.fetch()
        plan = eng.plan(["3.11.2"]).to_json()
    finally:
        eng.close()
    fixes = {f["key"]: f for f in plan["series"][0]["fixes"]}
    # The forged name is the fix's identity; the commit itself is its only member and source.
    f = fixes["0123456789abcdef0123456789abcdef01234567"]
    assert f["status"] == "new-clean" and f["attempts"][0]["source"] == forged
    g = fixes[latin]
    assert g["status"] == "new-clean" and "café" in g["subject"]
    assert not plan["errors"]
