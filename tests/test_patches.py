"""Patch queues read as fixes with an upstream identity: format-patch files, an mbox, a quilt
series with DEP-3 headers (built from the history builder with git itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stablectl.gitops.patches import parse_patch, read_queue
from stablectl.testing.history import Example
from tests.helpers import run_cli
from tests.test_sync import make_env


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
