"""Point releases on both forges: the full lifecycle (flag → PR → CI → approval → merge →
release PR → approval → tag → assets), stale approvals, review deadlines, an existing tag, the
no-op, manual triggers, and reproducible tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import tarfile
from pathlib import Path

import pygit2
import pytest

from stablectl.controller.release_history import tag_chain
from stablectl.forge.local import LocalForge
from stablectl.gitops.archive import build_tarballs, tar_bytes
from tests.controller.sync.test_sync import SyncEnv, make_env
from tests.forges import local_asset
from tests.helpers import run_cli


@pytest.fixture(params=["local", "github"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> SyncEnv:
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    return make_env(request.param, tmp_path, fake, series="3.11.2", releases=True)


def approve_backports(e: SyncEnv) -> list[int]:
    done = []
    for p in e.open_prs():
        if p.marker.kind == "backport" and not p.draft:
            e.review(p.number)
            e.green(p.head_sha)
            done.append(p.number)
    return done


def release_pr(e: SyncEnv) -> object | None:
    return next((p for p in e.open_prs() if p.marker.kind == "release"), None)


def approve_release(e: SyncEnv) -> int:
    """A maintainer approves the release PR and its tests pass on its head."""
    pr = release_pr(e)
    assert pr is not None
    e.review(pr.number)  # type: ignore[attr-defined]
    e.green(pr.head_sha)  # type: ignore[attr-defined]
    return pr.number  # type: ignore[attr-defined,no-any-return]


def test_full_lifecycle(env: SyncEnv) -> None:
    text = env.policy_path.read_text()
    env.policy_path.write_text(text.replace("release:\n", "release:\n  feed: site\n", 1))
    first = env.sync()
    assert first.problems == []
    site = env.state / "site"
    assert json.loads((site / "status.json").read_text())["series"][0]["releases"] == []
    # The fixes already on 3.11.2-stable (H and I) are unreleased security fixes: a release PR
    # is proposed at once (review_hours: 0 in the example policy).
    rpr = release_pr(env)
    assert rpr is not None and rpr.title == "[3.11.2-stable] Release 3.11.2.1"
    assert rpr.marker.extra["version"] == "3.11.2.1" and "Review until" in rpr.body
    merged = approve_backports(env)
    second = env.sync()
    # A, B and F merge; C conflicts here (its 3.12 rescue is outside a one-series policy).
    assert sum(1 for a in second.applied if a.kind == "merge") == len(merged) == 3
    # New fixes merged: the release PR is re-proposed with them (its head moved).
    rpr2 = release_pr(env)
    assert rpr2 is not None and rpr2.number == rpr.number and rpr2.head_sha != rpr.head_sha
    assert "gh-2100" in rpr2.body
    env.review(rpr2.number)
    # Approved, but the release commit is the tested unit: no merge, no tag, until the test
    # workflow has passed on the release PR's head (issue 17; it was merged with checks off).
    waiting = env.sync()
    assert not any(a.kind in ("merge", "tag") for a in waiting.applied)
    assert any("required check 'local-ci' has not run" in n for n in waiting.notices)
    env.green(rpr2.head_sha)
    third = env.sync()
    kinds = [a.kind for a in third.applied]
    assert kinds.count("merge") == 1 and "tag" in kinds and "release" in kinds
    # The run that published the release refreshed the feed (release.feed).
    status = json.loads((site / "status.json").read_text())
    assert [r["tag"] for r in status["series"][0]["releases"]] == ["v3.11.2.1"]
    assert "v3.11.2.1" in (site / "feed.atom").read_text()
    # releases.json: per release, the tag object, the commit and every file with its SHA-256
    # and download URL.
    (published,) = json.loads((site / "releases.json").read_text())["releases"]
    assert published["tag"] == "v3.11.2.1" and published["tag_object"]
    assert published["previous"]["tag"] == "v3.11.2"
    names = {f["name"] for f in published["files"]}
    assert {"Python-3.11.2.1.tar.xz", "manifest.json", "RELEASE-NOTES.md"} <= names
    assert all(f["url"] and len(f["sha256"]) == 64 for f in published["files"])
    # The tag: annotated, on the stable branch, at the release commit.
    fork = pygit2.Repository(str(env.example.fork))
    tag = fork.references["refs/tags/v3.11.2.1"].peel(pygit2.Tag)
    commit = tag.peel(pygit2.Commit)
    tip = fork.references["refs/heads/3.11.2-stable"].peel(pygit2.Commit)
    assert commit.id == tip.id and "Stablectl-Release: 3.11.2.1" in commit.message
    # Merged by fast-forward: the tag is on the very commit the checks passed on.
    assert str(commit.id) == rpr2.head_sha
    # The forge release and its assets.
    rel = env.new_forge().get_release("v3.11.2.1")
    assert rel is not None and rel.name == "pyexample 3.11.2.1"
    names = sorted(a.name for a in rel.assets)
    assert [n for n in names if not n.startswith("osv-")] == [
        "Python-3.11.2.1.patches.tar.xz",
        "Python-3.11.2.1.tar.xz",
        "Python-3.11.2.1.tgz",
        "RELEASE-NOTES.md",
        "SHA256SUMS",
        "manifest.json",
    ]
    assert "osv-PYEXAMPLE-STABLE-3.11.2.1-CVE-2023-24329.json" in names
    assert "## Security fixes" in rel.body and "CVE-2023-24329" in rel.body
    out = env.state / "releases" / "pyexample" / "v3.11.2.1"
    sums = dict(line.split("  ")[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    # SHA256SUMS covers every asset but itself (issue 17: it covered the tarballs only).
    assert sorted(sums) == [n for n in names if n != "SHA256SUMS"]
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    forge = env.new_forge()
    if isinstance(forge, LocalForge):  # the local forge keeps the published bytes themselves
        for name in sums:
            assert local_asset(forge, rel, name) == (out / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "stablectl.release/1" and manifest["tag"] == "v3.11.2.1"
    assert manifest["commit"] == str(commit.id)
    assert manifest["tested"]["commit"] == str(commit.id)
    tested = {c["name"]: c["conclusion"] for c in manifest["tested"]["checks"]}
    assert tested["local-ci"] == "success"
    assert manifest["base"] == {"tag": "v3.11.2", "commit": env.example.shas["v3.11.2"]}
    originals = {f["original"] for f in manifest["fixes"]}
    s = env.example.shas
    assert {s["A"], s["B"], s["F"], s["H"]} <= originals
    b = next(f for f in manifest["fixes"] if f["original"] == s["B"])
    assert b["cves"] == ["CVE-2023-24329"] and b["security"] and b["pr"]
    assert b["checks"] and b["checks"][0]["name"] == "local-ci"
    osv = json.loads((out / "osv-PYEXAMPLE-STABLE-3.11.2.1-CVE-2023-24329.json").read_text())
    assert osv["aliases"] == ["CVE-2023-24329"]
    assert osv["affected"][0]["ranges"][0]["events"][1] == {"fixed": b["commit"]}
    # What a machine needs: verbatim or adapted, who approved, the release's own review; an
    # OSV record for every security fix, with a CVE or not.
    assert b["change"] == "verbatim" and b["adapted"] is None and b["origin"] == "upstream"
    assert b["approvers"] == ["maint"]
    assert manifest["review"]["approvers"] == ["maint"] and manifest["review"]["release_pr"]
    security = [f for f in manifest["fixes"] if f["security"]]
    osvs = sorted(out.glob("osv-*.json"))
    assert len(osvs) == sum(max(1, len(f["cves"])) for f in security) > 1
    assert any(json.loads(p.read_text())["aliases"] == [] for p in osvs)
    # The release tag names its commit and the base tag's object: the start of the chain.
    chain = tag_chain(tag.message)
    assert chain["Stablectl-Commit"] == str(commit.id)
    base_tag = fork.references["refs/tags/v3.11.2"].target
    assert chain["Stablectl-Previous"] == f"v3.11.2 {base_tag}"
    with tarfile.open(out / "Python-3.11.2.1.patches.tar.xz") as patches:
        assert "Python-3.11.2.1-patches/series" in patches.getnames()
    # Nothing new to release: a quiet run.
    quiet = env.sync()
    assert quiet.applied == [] and quiet.api["writes"] == 0, quiet.actions
    assert release_pr(env) is None


def test_release_approval_goes_stale_when_new_fixes_arrive(env: SyncEnv) -> None:
    env.sync()
    rpr = release_pr(env)
    env.review(rpr.number)  # approved for H and I only
    approve_backports(env)
    report = env.sync()  # merges the backports first, then re-proposes the release
    assert not any(a.kind == "tag" for a in report.applied)
    rpr2 = release_pr(env)
    assert rpr2 is not None and rpr2.head_sha != rpr.head_sha
    assert "refs/tags/v3.11.2.1" not in pygit2.Repository(str(env.example.fork)).references


def test_review_deadline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    e.policy_path.write_text(
        e.policy_path.read_text().replace("review_hours: 0", "review_hours: 48")
    )
    e.sync()
    rpr = release_pr(e)
    assert rpr is not None and "(48 hours)" in rpr.body
    e.review(rpr.number)
    report = e.sync()
    assert any("under review until" in n for n in report.notices)
    assert release_pr(e).number == rpr.number  # approved, but not merged before the deadline
    # Downstreams see the release under review and its deadline in machine-readable form.
    site = tmp_path / "site"
    argv = ["--state-dir", str(e.state), "feed", "--policy", str(e.policy_path), "--out", str(site)]
    assert run_cli(capsys, *argv).code == 0
    status = json.loads((site / "status.json").read_text())
    proposed = status["series"][0]["release_pr"]
    assert proposed["number"] == rpr.number and proposed["version"] == "3.11.2.1"
    assert proposed["deadline"] == rpr.marker.extra["deadline"]
    assert (
        json.loads((site / "releases.json").read_text())["proposed"][0]["deadline"]
        == (proposed["deadline"])
    )
    assert f"3.11.2.1 proposed: review until {proposed['deadline']}" in (
        (site / "feed.atom").read_text()
    )


def test_an_existing_tag_is_never_moved(tmp_path: Path) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    fork = pygit2.Repository(str(e.example.fork))
    fork.references.create("refs/tags/v3.11.2.1", pygit2.Oid(hex=e.example.shas["v3.11.2"]))
    e.sync()
    approve_release(e)
    report = e.sync()
    assert any("tag v3.11.2.1 exists at" in p and "never moved" in p for p in report.problems)
    assert str(fork.references["refs/tags/v3.11.2.1"].target) == e.example.shas["v3.11.2"]
    assert e.new_forge().get_release("v3.11.2.1") is None


def test_manual_trigger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    e.policy_path.write_text(e.policy_path.read_text() + "  trigger: manual\n")
    e.sync()
    assert release_pr(e) is None
    r = run_cli(
        capsys,
        "--state-dir",
        str(e.state),
        "release",
        "--policy",
        str(e.policy_path),
        "--series",
        "3.11.2",
        "--json",
    )
    assert r.code == 0, r.err
    assert any(
        a["action"] == "open" and "Release 3.11.2.1" in a["detail"] for a in r.json()["actions"]
    )
    assert release_pr(e) is not None


def test_release_comment_command(tmp_path: Path) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    e.policy_path.write_text(e.policy_path.read_text() + "  trigger: manual\n")
    e.sync()
    some = e.open_prs()[0]
    e.comment(some.number, "/stablectl release 3.11.2", "maint")
    e.sync()
    assert release_pr(e) is not None
    assert e.sync().api["writes"] == 0


def test_tarballs_are_reproducible(tmp_path: Path) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    repo = pygit2.Repository(str(e.example.upstream))
    sha = e.example.shas["v3.11.2"]
    a = build_tarballs(repo, sha, "Python-3.11.2.1", tmp_path / "one")
    b = build_tarballs(repo, sha, "Python-3.11.2.1", tmp_path / "two")
    assert [x.sha256 for x in a] == [x.sha256 for x in b]
    assert [x.path.read_bytes() for x in a] == [x.path.read_bytes() for x in b]
    raw = tar_bytes(repo, sha, "Python-3.11.2.1")
    assert lzma.decompress(a[0].path.read_bytes()) == raw
    assert gzip.decompress(a[1].path.read_bytes()) == raw
    assert a[1].path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    when = repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit).commit_time
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "Python-3.11.2.1" and all(n.startswith("Python-3.11.2.1") for n in names)
    assert all(m.mtime == when and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    files = [m for m in members if m.isfile()]
    tree = repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit).tree
    blob = tree["Lib/ssl.py"]
    member = next(m for m in files if m.name == "Python-3.11.2.1/Lib/ssl.py")
    assert member.mode == 0o644 and member.size == len(repo[blob.id].read_raw())


def test_signed_tag_with_an_ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STABLECTL_SIGNING_KEY (+ STABLECTL_SIGNING_FORMAT, default ssh) signs the tag; git
    verifies it with the public key as an allowed signer."""
    import shutil
    import subprocess

    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    key = tmp_path / "signing"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "release@example.org",
            "-f",
            str(key),
        ],
        check=True,
    )
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(key))
    e = make_env("local", tmp_path / "env", None, series="3.11.2", releases=True)
    e.sync()
    approve_release(e)
    report = e.sync()
    assert "tag" in [a.kind for a in report.applied], report.problems
    allowed = tmp_path / "allowed"
    allowed.write_text("stablectl@example.org " + (tmp_path / "signing.pub").read_text())
    r = subprocess.run(
        [
            "git",
            "--git-dir",
            str(e.example.fork),
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed}",
            "tag",
            "-v",
            "v3.11.2.1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert 'Good "git" signature for stablectl@example.org' in r.stderr


def test_a_crash_anywhere_in_the_release_run_recovers(tmp_path: Path) -> None:
    """SIGKILL after each write point of the run that merges the release PR, tags and
    publishes (merge, branch deletion, tag, release, each asset); the next run finishes the
    job: one tag at the release commit, a release with every asset once, then quiet."""
    import shutil

    template = make_env("local", tmp_path / "t", None, series="3.11.2", releases=True)
    template.sync()
    approve_release(template)

    def copy(n: int) -> SyncEnv:
        root = tmp_path / f"c{n}"
        shutil.copytree(template.root, root, symlinks=True)
        text = (root / "policy.yaml").read_text().replace(str(template.root), str(root))
        (root / "policy.yaml").write_text(text)
        ex = type(template.example)(
            root / "ex" / "upstream.git", root / "ex" / "fork.git", template.example.shas
        )
        return SyncEnv("local", root, ex, root / "policy.yaml", root / "state")

    ref = copy(0)
    r = ref.cli("sync", "--json")
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)["write_points"]
    assert points >= 8
    expected_assets = sorted(a.name for a in ref.new_forge().get_release("v3.11.2.1").assets)
    for n in range(1, points + 1):
        e = copy(n)
        r = e.cli("sync", crash_after=n)
        assert r.returncode == -9, (n, r.stderr)
        r = e.cli("sync")
        assert r.returncode == 0, (n, r.stderr)
        rel = e.new_forge().get_release("v3.11.2.1")
        assert rel is not None and sorted(a.name for a in rel.assets) == expected_assets, n
        fork = pygit2.Repository(str(e.example.fork))
        tag = fork.references["refs/tags/v3.11.2.1"].peel(pygit2.Commit)
        tip = fork.references["refs/heads/3.11.2-stable"].peel(pygit2.Commit)
        assert tag.id == tip.id, n
        assert e.sync().api["writes"] == 0, n
        assert not [r for r in fork.references if r.startswith("refs/heads/stablectl/release")]


def test_a_release_waits_for_the_follow_up_of_a_fix_it_ships(env: SyncEnv) -> None:
    """H (gh-2700, a security fix already on 3.11.2-stable, unreleased) is completed upstream
    by G, whose message names gh-2700: G is flagged `follow-up` (security), gets its own PR
    labelled `follow-up`, and no release is proposed until G is merged."""
    from stablectl.gitops.history import History
    from tests.controller.sync.test_sync import edit

    h = env.example.shas["H"]
    up = History(env.example.upstream, clock=2_000_000_000)
    path = "Modules/mod10.c"
    g = up.commit(
        "main",
        "gh-2750: Fix a leak in the mod10 bound (#2751)\n\nIntroduced by the fix of gh-2700.",
        {path: edit(up.read("main", path), 3, "no leak")},
    )
    first = env.sync()
    assert first.problems == []
    fixes = {x["key"]: x for x in first.to_json()["plan"]["series"][0]["fixes"]}  # type: ignore[index]
    assert fixes[g]["follows"] == h and fixes[g]["security"]
    assert [f["rule"] for f in fixes[g]["flags"]] == ["follow-up"]
    assert release_pr(env) is None
    assert any("release waits for follow-ups" in n and g[:10] in n for n in first.notices)
    pr = next(p for p in env.open_prs() if p.marker.original == g)
    assert {"follow-up", "security"} <= set(pr.labels)
    assert "| Follows up |" in pr.body and h[:10] in pr.body
    merged = approve_backports(env)
    assert pr.number in merged
    env.sync()
    rpr = release_pr(env)
    assert rpr is not None and "gh-2750" in rpr.body
    assert f"follow-up of upstream `{h[:10]}`" in rpr.body


def test_actions_output_names_the_published_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Actions, sync writes `released` (a JSON list of tags): the controller workflow's
    release-test job builds each from its published tarball, release-sign signs it."""
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    e.sync()
    approve_release(e)
    out = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    argv = ["--state-dir", str(e.state), "sync", "--policy", str(e.policy_path)]
    r = run_cli(capsys, *argv)
    assert r.code == 0, r.err
    sums = e.state / "releases" / "pyexample" / "v3.11.2.1" / "SHA256SUMS"
    digest = hashlib.sha256(sums.read_bytes()).hexdigest()
    # The hash of the SHA256SUMS sync built: release-sign signs the published one only if equal.
    assert out.read_text() == (
        f'released=["v3.11.2.1"]\nreleased_sums={{"v3.11.2.1": "{digest}"}}\n'
    )
    out.unlink()
    assert run_cli(capsys, *argv).code == 0
    assert out.read_text() == "released=[]\nreleased_sums={}\n"  # nothing published


def test_release_notes_list_what_the_line_is_not_affected_by(tmp_path: Path) -> None:
    """The "not affected" list distributions write by hand: each security fix judged not
    applicable, with the reason and evidence, in the release notes (here D, whose only code
    is Lib/ssl.py, outside a build profile that does not ship ssl)."""
    e = make_env("local", tmp_path, None, series="3.11.2", releases=True)
    text = e.policy_path.read_text()
    e.policy_path.write_text(
        text.replace(
            "    eol: 2027-10-31\n", '    eol: 2027-10-31\n    not_built: ["Lib/ssl.py"]\n'
        )
    )
    e.sync()
    approve_release(e)
    report = e.sync()
    assert report.problems == []
    notes = (e.state / "releases" / "pyexample" / "v3.11.2.1" / "RELEASE-NOTES.md").read_text()
    section = notes.split("## Not affected", 1)[1].split("\n## ", 1)[0]
    d = e.example.shas["D"]
    assert (
        f"gh-2300: Harden ssl hostname matching (#2301); upstream `{d[:10]}`: not built" in section
    )
    assert "(Lib/ssl.py: matches Lib/ssl.py (series 3.11.2: not_built))" in section
