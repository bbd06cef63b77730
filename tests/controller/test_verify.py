"""`stablectl verify` on the demo's mirror: passes as built; fails, naming the commit, tag or
file, on a rewritten branch, a commit with a forged trailer, a swapped tarball, and a tarball
swapped together with its manifest (caught by rebuilding from the tag)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Run, run_cli

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Mallory",
    "GIT_AUTHOR_EMAIL": "m@example.invalid",
    "GIT_COMMITTER_NAME": "Mallory",
    "GIT_COMMITTER_EMAIL": "m@example.invalid",
}


def verify(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> Run:
    return run_cli(
        capsys,
        "--state-dir",
        str(root / "state"),
        "verify",
        "--policy",
        str(root / "policy.yaml"),
        "--json",
        *args,
    )


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(root / "fork.git"), *args],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stdout.strip()


def errors(r: Run) -> list[dict[str, str]]:
    return [f for f in r.json()["findings"] if f["level"] == "error"]


def test_the_demo_mirror_verifies(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = verify(capsys, demo, "--rebuild")
    assert r.code == 0, r.out + r.err
    data = r.json()
    assert data["ok"] and not errors(r)
    by = {s["branch"]: s for s in data["series"]}
    assert by["3.11.2-stable"]["counts"]["backports"] == 6
    assert by["3.11.2-stable"]["counts"]["matched without trailer"] == 1  # the backport by hand
    assert by["3.12.1-stable"]["counts"]["identical"] == 6
    rel = by["3.11.2-stable"]["releases"][0]
    assert rel["tag"] == "v3.11.2.1" and rel["annotated"] and rel["artifacts_checked"] == 9
    assert rel["rebuilt"]  # the tarballs were rebuilt from the tag and matched
    known = json.loads((demo / "state" / "verify-known.json").read_text())
    assert known[str(demo / "fork.git")]["branch:3.12.1-stable"] == by["3.12.1-stable"]["tip"]


def test_the_demo_signs_its_releases_and_a_fresh_machine_checks_them(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo generates a release key, pins it in its policy and signs tags and SHA256SUMS;
    a verify with a state directory never used before checks every signature."""
    r = run_cli(
        capsys,
        "--state-dir",
        str(demo / "fresh-state"),
        "verify",
        "--policy",
        str(demo / "policy.yaml"),
        "--releases",
        str(demo / "state" / "releases" / "pyexample"),
        "--json",
    )
    assert r.code == 0, r.out
    releases = [rel for s in r.json()["series"] for rel in s["releases"]]
    assert [rel["tag"] for rel in releases] == ["v3.11.2.1", "v3.12.1.1"]
    assert all(
        rel["signed_by"] == rel["sums_signed_by"] == "releases@pyexample" for rel in releases
    )
    assert (demo / "release-keys" / "allowed-signers").is_file()


def test_a_rewritten_branch_is_reported_loudly(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify(capsys, demo).code == 0  # remembered as verified
    tip = git(demo, "rev-parse", "3.12.1-stable")
    parent = git(demo, "rev-parse", "3.12.1-stable~2")
    tree = git(demo, "rev-parse", "3.12.1-stable~1^{tree}")
    rewritten = git(demo, "commit-tree", tree, "-p", parent, "-m", "Same change, new history")
    git(demo, "update-ref", "refs/heads/3.12.1-stable", rewritten)
    r = verify(capsys, demo)
    assert r.code == 1
    msgs = [f["what"] for f in errors(r)]
    assert any(m.startswith("REWRITTEN: 3.12.1-stable was " + tip) for m in msgs), msgs
    assert any(f["subject"] == rewritten for f in errors(r))  # the commit without provenance
    # The failure is not remembered as verified: the next run reports it again.
    assert verify(capsys, demo).code == 1


def test_a_forged_trailer_names_the_commit(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tip = git(demo, "rev-parse", "3.11.2-stable")
    forged = git(
        demo,
        "commit-tree",
        f"{tip}^{{tree}}",
        "-p",
        tip,
        "-m",
        "gh-9999: Harden the parser\n\n(cherry picked from commit "
        "0123456789abcdef0123456789abcdef01234567)",
    )
    git(demo, "update-ref", "refs/heads/3.11.2-stable", forged)
    r = verify(capsys, demo)
    assert r.code == 1
    (e,) = errors(r)
    assert e["subject"] == forged and "upstream does not have" in e["what"]
    assert "0123456789abcdef0123456789abcdef01234567" in e["what"]


def test_a_swapped_tarball_is_caught(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = demo / "state" / "releases" / "pyexample" / "v3.11.2.1"
    manifest = json.loads((rel / "manifest.json").read_text())
    art = next(a for a in manifest["artifacts"] if a["name"].endswith(".tar.xz"))
    tarball = rel / art["name"]
    tarball.write_bytes(tarball.read_bytes()[:-1] + b"\0")
    r = verify(capsys, demo)
    assert r.code == 1
    (e,) = errors(r)
    assert e["subject"] == str(tarball) and "does not match SHA256SUMS's" in e["what"]
    # Swapped together with its manifest and SHA256SUMS: the checksums agree, but the demo's
    # release key signed SHA256SUMS, and that signature no longer holds.
    art["sha256"] = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (rel / "manifest.json").write_text(json.dumps(manifest))
    sums = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in rel.iterdir()
        if not p.name.startswith("SHA256SUMS")
    }
    (rel / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    r = verify(capsys, demo)
    (e,) = errors(r)
    assert e["subject"].endswith("SHA256SUMS.sig") and "BAD signature" in e["what"]
    # A mirror that signs nothing (no keys pinned, the signature gone): only rebuilding from
    # the tag shows the tarball is not what the tag produces.
    (rel / "SHA256SUMS.sig").unlink()
    policy = demo / "policy.yaml"
    policy.write_text(
        "\n".join(ln for ln in policy.read_text().splitlines() if "signing:" not in ln) + "\n"
    )
    assert verify(capsys, demo).code == 0
    r = verify(capsys, demo, "--rebuild")
    assert r.code == 1
    (e,) = errors(r)
    assert e["subject"] == "v3.11.2.1" and "rebuilt from the tag" in e["what"]
