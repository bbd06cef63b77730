"""Patch queues read as fixes with an upstream identity: format-patch files, an mbox, a quilt
series with DEP-3 headers (built from the history builder with git itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stablectl.controller.demo import Example
from stablectl.gitops.patches import parse_patch, read_queue
from tests.controller.sync.test_sync import make_env
from tests.helpers import Line, run_cli


def format_patches(ex: Example, out: Path, *shas: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, sha in enumerate(shas, 1):
        r = subprocess.run(
            [
                "git",
                "--git-dir",
                str(ex.upstream),
                "format-patch",
                "-1",
                "--start-number",
                str(i),
                "-o",
                str(out),
                sha,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        files.append(Path(r.stdout.strip()))
    return files


def test_format_patch_identity_and_paths(example: Example, tmp_path: Path) -> None:
    s = example.shas
    (f,) = format_patches(example, tmp_path / "q", s["E-revert"])
    p = parse_patch(f.name, f.read_bytes())
    assert p.upstream == s["E-revert"]
    assert p.subject.startswith('Revert "gh-2400')
    assert p.message.startswith(p.subject + "\n\nThis reverts commit ")
    # The revert deletes the NEWS entry the fix added and changes the file it changed.
    assert p.deleted == {"Misc/NEWS.d/next/Security/2023-01-01-00-00-00.gh-issue-2400.abcdef.rst"}
    assert "Modules/mod07.c" in p.paths and p.deleted <= set(p.paths)
    assert p.author_email and p.author_time > 0


def test_queue_kinds_agree(example: Example, tmp_path: Path) -> None:
    s = example.shas
    files = format_patches(example, tmp_path / "dir", s["A"], s["B"], s["C"])
    by_dir = read_queue(tmp_path / "dir")
    assert [p.upstream for p in by_dir] == [s["A"], s["B"], s["C"]]
    mbox = tmp_path / "all.mbox"
    mbox.write_bytes(b"".join(f.read_bytes() for f in files))
    by_mbox = read_queue(mbox)
    assert [(p.upstream, p.subject, p.paths) for p in by_mbox] == [
        (p.upstream, p.subject, p.paths) for p in by_dir
    ]
    quilt = tmp_path / "quilt"
    quilt.mkdir()
    dep3 = (
        f"Description: Fix quadratic time in http.client headers\n"
        f"Origin: upstream, https://github.com/python/cpython/commit/{s['B']}\n"
        f"Bug: https://github.com/python/cpython/issues/2100\n---\n"
    )
    diff = files[1].read_text().split("\ndiff --git ", 1)[1]
    (quilt / "fix-b.diff").write_text(dep3 + "diff --git " + diff)
    (quilt / "series").write_text("# the queue\nfix-b.diff -p1\n")
    (q,) = read_queue(quilt)
    assert q.upstream == s["B"] and q.subject == "Fix quadratic time in http.client headers"
    assert q.paths == by_dir[1].paths


def test_export_quilt_and_mbox_reproduce_the_stable_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2")
    e.sync()
    for p in e.open_prs():
        if not p.draft:
            e.review(p.number)
            e.green(p.head_sha)
    e.sync()
    base = ["--state-dir", str(e.state)]
    r = run_cli(
        capsys,
        *base,
        "export",
        "--policy",
        str(e.policy_path),
        "--series",
        "3.11.2",
        str(tmp_path / "quilt"),
    )
    assert r.code == 0, r.err
    queue = read_queue(tmp_path / "quilt")
    s = e.example.shas
    assert len(queue) == 5  # H and I (by hand) and the three merged backports
    origins = {p.upstream for p in queue}
    assert s["B"] in origins and s["H"] in origins  # Origin: the commit the trailer names
    assert all(p.subject for p in queue)
    # DEP-3: one Origin per patch, even for a pick of upstream's maintenance-branch backport
    # (two `cherry picked from` lines); the main original goes in X-Upstream-Original.
    patches = [p.read_text() for p in sorted((tmp_path / "quilt").glob("*.patch"))]
    assert all(t.split("\n---\n")[0].count("\nOrigin:") == 1 for t in patches)
    assert any("\nX-Upstream-Original: " in t for t in patches)
    # Applying the series onto the base gives exactly the stable branch's tree.
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(e.example.fork), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", s["v3.11.2"]], check=True)
    for line in (tmp_path / "quilt" / "series").read_text().splitlines():
        if line and not line.startswith("#"):
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(work),
                    "apply",
                    "--index",
                    str(tmp_path / "quilt" / line.split()[0]),
                ],
                check=True,
            )
    tree = subprocess.run(
        ["git", "-C", str(work), "write-tree"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tip_tree = subprocess.run(
        ["git", "--git-dir", str(e.example.fork), "rev-parse", "3.11.2-stable^{tree}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tree == tip_tree
    r = run_cli(
        capsys,
        *base,
        "export",
        "--policy",
        str(e.policy_path),
        "--series",
        "3.11.2",
        "--format",
        "mbox",
        "--offline",
        str(tmp_path / "mbox"),
    )
    assert r.code == 0, r.err
    mbox = read_queue(tmp_path / "mbox" / "3.11.2.mbox")
    assert [p.subject for p in mbox] == [p.subject for p in queue]


@pytest.mark.parametrize("without_identity", [False, True])
def test_a_patch_queue_is_a_source_of_fixes(tmp_path: Path, without_identity: bool) -> None:
    """A series takes fixes from a patch queue too: an upstream fix exported as a
    format-patch is the same fix (grouped through its `From <sha>`), a distribution's own
    patch with a Security NEWS entry is a new fix, one that does not apply is reported."""
    from stablectl.controller.workspace import Workspace
    from stablectl.gitops.history import History

    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "1\n2\n3\n", "Lib/b.py": "x\n"})
    h.tag("v1", base)
    h.branch("1.x", base)
    fix = h.commit(
        "main",
        "gh-10: Fix a (#11)",
        {
            "Lib/a.py": "1\n2\nthree\n",
            "Misc/NEWS.d/next/Security/2024-01-01.gh-issue-10.x.rst": "Fix a.\n",
        },
    )
    line = Line.of(h, tmp_path, "1-stable", base)
    fork = line.fork
    queue = tmp_path / "queue"
    queue.mkdir()
    r = subprocess.run(
        ["git", "--git-dir", str(h.path), "format-patch", "-1", "--stdout", fix],
        capture_output=True,
        check=True,
    )
    (queue / "0001-fix-a.patch").write_bytes(r.stdout)
    (queue / "0002-vendor.patch").write_text(
        "Description: Harden b against long input\nOrigin: vendor\n---\n"
        "diff --git a/Lib/b.py b/Lib/b.py\n--- a/Lib/b.py\n+++ b/Lib/b.py\n"
        "@@ -1 +1 @@\n-x\n+y\n"
        "diff --git a/Misc/NEWS.d/next/Security/b.rst b/Misc/NEWS.d/next/Security/b.rst\n"
        "new file mode 100644\n--- /dev/null\n+++ b/Misc/NEWS.d/next/Security/b.rst\n"
        "@@ -0,0 +1 @@\n+Harden b.\n"
    )
    (queue / "0003-broken.patch").write_text(
        "Description: Does not apply\n---\ndiff --git a/Lib/b.py b/Lib/b.py\n"
        "--- a/Lib/b.py\n+++ b/Lib/b.py\n@@ -1 +1 @@\n-nothing like this\n+z\n"
    )
    (queue / "series").write_text("0001-fix-a.patch\n0002-vendor.patch\n0003-broken.patch\n")
    if without_identity:
        # No `From <sha>`, no trailer, no Origin: only the upstream PR number links them.
        diff = r.stdout.decode().split("\ndiff --git ", 1)[1]
        (queue / "0001-fix-a.patch").write_text(
            "Description: gh-10: Fix a (#11)\n---\ndiff --git " + diff
        )
    policy = line.policy(
        'name: "1", base: v1, branch: 1-stable, sources: ["1.x", main], since: 2000-01-01,'
        f" patches: {queue}",
        project="q",
    )
    plan = line.plan(policy).to_json()
    fixes = plan["series"][0]["fixes"]
    assert any("0003-broken.patch: does not apply" in e for e in plan["errors"])
    by_subject = {f["subject"]: f for f in fixes}
    assert set(by_subject) == {"gh-10: Fix a (#11)", "Harden b against long input"}
    a = by_subject["gh-10: Fix a (#11)"]
    assert a["key"] == fix and len(a["members"]) == 2  # the upstream commit and its patch
    assert {fl["rule"] for fl in a["flags"]} == {"security-news"} and len(a["flags"]) == 2
    assert a["status"] == "new-clean"
    assert len(fixes) == 2
    b = by_subject["Harden b against long input"]
    assert b["status"] == "new-clean" and b["source"]["branch"] == "stablectl-queue/1"
    if without_identity:
        return
    # The distribution's own patch, backported: `verify` accepts it as what it is, a downstream
    # patch, listed and counted apart; with no queue declared it is not taken for upstream's.
    from stablectl.controller.verify import verify

    queued = b["source"]["commit"]
    picked = fork.commit(
        "1-stable",
        f"Harden b against long input\n\n(cherry picked from commit {queued})",
        {"Lib/b.py": "y\n", "Misc/NEWS.d/next/Security/b.rst": "Harden b.\n"},
    )
    eng = Workspace(policy, tmp_path / "state", committer_time=1)
    eng.fetch()
    report = verify(eng, policy, policy.series, releases_dir=None, record=False)
    eng.close()
    assert report.ok, report.findings
    assert report.audits[0].counts["downstream patches"] == 1
    assert any("from the series' patch queue" in f.what for f in report.findings)
    bare = policy.model_copy(
        update={"series": [policy.series[0].model_copy(update={"patches": None})]}
    )
    eng = Workspace(bare, tmp_path / "state2", committer_time=1)
    eng.fetch()
    report = verify(eng, bare, bare.series, releases_dir=None, record=False)
    eng.close()
    (err,) = [f for f in report.findings if f.level == "error"]
    assert err.subject == picked and "patch queue commit presented as upstream" in err.what


def test_non_ascii_subject_and_quilt_refreshed_patch_keep_their_names(tmp_path: Path) -> None:
    """`git format-patch` writes RFC 2047 encoded words for non-ASCII subjects and authors
    (found on Debian's python3.11 queue: `=?UTF-8?q?[3.11]=20gh-102281…`); a quilt-refreshed
    patch (plain unified diff, no `diff --git`) keeps the name of its file."""
    repo = tmp_path / "r"
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    git = ["git", "-C", str(repo), "-c", "user.name=Łukasz Langa", "-c", "user.email=l@x"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "f.c").write_text("int x;\n")
    subprocess.run([*git, "add", "f.c"], check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "base"], check=True, env=env)
    (repo / "f.c").write_text("int x = 0;\n")
    subprocess.run(
        [*git, "commit", "-qam", "[3.11] gh-102281: Fix potential nullptr dereference — “δ”"],
        check=True,
        env=env,
    )
    out = subprocess.run(
        [*git, "format-patch", "-1", "--stdout"], check=True, capture_output=True, env=env
    ).stdout
    assert b"=?UTF-8?q?" in out  # git encoded the subject
    p = parse_patch("0001-fix.patch", out)
    assert p.subject == "[3.11] gh-102281: Fix potential nullptr dereference — “δ”"
    assert p.author_name == "Łukasz Langa" and p.name == "0001-fix.patch"
    refreshed = (
        b"Description: Fix it\nOrigin: upstream\n---\n"
        b"--- a/Python/fileutils.c\n+++ b/Python/fileutils.c\n@@ -1 +1 @@\n-a\n+b\n"
    )
    q = parse_patch("fileutils.diff", refreshed)
    assert q.name == "fileutils.diff" and q.paths == ["Python/fileutils.c"]
