"""Scenario tests of the reconcile loop, on both forges: given upstream and forge state, after
sync the fork holds exactly the expected branches and PRs; a second sync writes nothing; a
crash after any write point recovers; concurrent syncs never duplicate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import pytest

from stablectl.controller.demo import Example, build_example
from stablectl.controller.sync import Syncer, SyncReport, branch_name
from stablectl.controller.sync.actions import ClosePR
from stablectl.controller.workspace import Workspace
from stablectl.forge.base import Forge
from stablectl.forge.github import GitHubForge
from stablectl.forge.local import LocalForge
from stablectl.gitops.history import History
from stablectl.gitops.messages import adapted_of
from stablectl.policy import GITHUB_ACTIONS_IDENTITY, LOCAL_CI_IDENTITY, load_policy
from tests.forges import TOKENS
from tests.ghserver.server import FakeGitHub
from tests.helpers import Line, run_cli

FORK_SLUG = "example/cpython-stable"
BOT = "stablectl-bot"
CI_LOCAL, CI_GITHUB = LOCAL_CI_IDENTITY, GITHUB_ACTIONS_IDENTITY


@dataclass
class SyncEnv:
    kind: str
    root: Path
    example: Example
    policy_path: Path
    state: Path
    fake: FakeGitHub | None = None
    forge: Forge | None = None

    def new_forge(self) -> Forge:
        if self.kind == "local":
            return LocalForge(
                self.state / "forge" / "pyexample.sqlite",
                self.example.fork,
                slug=FORK_SLUG,
                actor=BOT,
            )
        assert self.fake is not None
        return GitHubForge(
            api_url=self.fake.base,
            fork=FORK_SLUG,
            upstream="example/cpython",
            token=TOKENS[BOT],
            state_dir=self.state,
            backoff=(0.01, 0.02),
            sleep=lambda s: None,
        )

    def sync(self, **kw: Any) -> SyncReport:
        policy = load_policy(self.policy_path)
        engine = Workspace(policy, self.state, committer_time=1_700_000_000)
        forge = self.new_forge()
        try:
            return Syncer(engine, forge, policy_file=str(self.policy_path)).run(**kw)
        finally:
            engine.close()

    def env(self) -> dict[str, str]:
        e = dict(os.environ, STABLECTL_STATE=str(self.state), NO_COLOR="1")
        e["STABLE_GH_TOKEN"] = TOKENS[BOT]
        return e

    def cli(
        self, *args: str, env: dict[str, str] | None = None, crash_after: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`stablectl ARGS --policy P`; with `crash_after`, killed after that many writes."""
        command = ["-m", "stablectl"] if crash_after is None else [str(CRASH), str(crash_after)]
        return subprocess.run(
            [sys.executable, *command, *args, "--policy", str(self.policy_path)],
            capture_output=True,
            text=True,
            env=env or self.env(),
            timeout=300,
        )

    def review(self, number: int, user: str = "maint") -> None:
        f = self.new_forge()
        if isinstance(f, LocalForge):
            f.review(number, user, "APPROVED")
            return
        import requests

        assert self.fake is not None
        self.fake.add_token(f"tok-{user}", user)
        r = requests.post(
            f"{self.fake.base}/repos/{FORK_SLUG}/pulls/{number}/reviews",
            json={"event": "APPROVE"},
            timeout=10,
            headers={"Authorization": f"token tok-{user}"},
        )
        r.raise_for_status()

    def comment(self, number: int, body: str, user: str) -> None:
        f = self.new_forge()
        if isinstance(f, LocalForge):
            f.comment(number, body, user=user)
            return
        import requests

        assert self.fake is not None
        self.fake.add_token(f"tok-{user}", user)
        self.fake.repos[FORK_SLUG].writers.add(user)
        r = requests.post(
            f"{self.fake.base}/repos/{FORK_SLUG}/issues/{number}/comments",
            json={"body": body},
            timeout=10,
            headers={"Authorization": f"token tok-{user}"},
        )
        r.raise_for_status()

    def green(self, sha: str, *, by: str | None = None, state: str = "success") -> None:
        """A `local-ci` result (passing unless `state` says) on `sha`, reported by the CI (or
        by `by`, a writer on the fork)."""
        f = self.new_forge()
        if isinstance(f, LocalForge):
            f.record_check("local-ci", sha, "completed", state, "", creator=by or CI_LOCAL)
            return
        assert self.fake is not None
        st = "success" if state == "success" else "failure"
        self.as_user(by or CI_GITHUB).set_status(sha, "local-ci", st, "https://ci.invalid/1")

    def move_branch(self, branch: str, sha: str, *, by: str) -> None:
        """`by`, a writer on the fork, moves `branch` to `sha` outside stablectl (a push; on
        GitHub a ref update, which marks a PR whose head it reaches merged by `by`)."""
        if self.fake is None:
            repo = pygit2.Repository(str(self.example.fork))
            repo.references.create(f"refs/heads/{branch}", pygit2.Oid(hex=sha), force=True)
            return
        import requests

        self.as_user(by)
        r = requests.patch(
            f"{self.fake.base}/repos/{FORK_SLUG}/git/refs/heads/{branch}",
            json={"sha": sha, "force": False},
            timeout=10,
            headers={"Authorization": f"token tok-{by}"},
        )
        r.raise_for_status()

    def as_user(self, login: str) -> GitHubForge:
        """A GitHub client for someone other than the controller (a writer, the CI)."""
        assert self.fake is not None
        self.fake.add_token(f"tok-{login}", login)
        self.fake.repos[FORK_SLUG].writers.add(login)
        return GitHubForge(
            api_url=self.fake.base,
            fork=FORK_SLUG,
            upstream="example/cpython",
            token=f"tok-{login}",
            backoff=(0.01, 0.02),
            sleep=lambda s: None,
        )

    def fork_refs(self) -> dict[str, str]:
        repo = pygit2.Repository(str(self.example.fork))
        return {
            r: str(repo.references[r].target)
            for r in repo.references
            if r.startswith("refs/heads/")
        }

    def open_prs(self) -> list[Any]:
        return [p for p in self.new_forge().list_prs("all") if p.state == "open"]

    def picture(self) -> tuple[Any, ...]:
        """The end state that must not depend on crashes: PRs (not their numbers) and refs."""
        prs = sorted(
            (p.title, p.head, p.head_sha, p.state, p.draft, p.labels)
            for p in self.new_forge().list_prs("all")
            if p.state != "closed"
        )
        return tuple(prs), tuple(sorted(self.fork_refs().items()))


CRASH = Path(__file__).resolve().parents[2] / "crash.py"  # the SIGKILL hook, not in the wheel


def install_workflows(ex: Example) -> None:
    """The fork's control branch with the rendered workflows (what `stablectl init` does)."""
    from stablectl.controller.init import commit_files
    from stablectl.controller.workflows import render_workflows

    repo = pygit2.Repository(str(ex.fork))
    policy = load_policy_text_for(ex)
    files = {r.path: r.text.encode() for r in render_workflows(policy, "policy.yaml")}
    sig = pygit2.Signature("t", "t@example.org", 1_700_000_000, 0)
    new = commit_files(repo, None, files=files, message="workflows\n", who=sig)
    assert new is not None
    repo.references.create("refs/heads/main", pygit2.Oid(hex=new), force=True)
    # Dispatched test runs go to a branch of their own (ci.tests_branch), as init makes it.
    repo.references.create(f"refs/heads/{policy.ci.tests_branch}", pygit2.Oid(hex=new), force=True)


def load_policy_text_for(ex: Example) -> Any:
    from stablectl.policy import load_policy_text

    return load_policy_text(ex.policy_yaml())


def make_env(
    kind: str, root: Path, fake: FakeGitHub | None, *, series: str = "", releases: bool = False
) -> SyncEnv:
    ex = build_example(root / "ex")
    forge = "kind: local"
    if kind == "github":
        assert fake is not None
        for login, token in TOKENS.items():
            fake.add_token(token, login)
        fake.add_token(TOKENS[BOT], BOT)
        fake.add_repo(FORK_SLUG, ex.fork, writers={BOT, "maint"})
        install_workflows(ex)
        forge = f'kind: github\n  api_url: "{fake.base}"\n  token_env: STABLE_GH_TOKEN'
    text = ex.policy_yaml().replace("forge:\n  kind: local", "forge:\n  " + forge)
    text = text.replace("identity:\n  name: stablectl", f"identity:\n  name: {BOT}")
    if series:
        # Keep one series: fewer write points for the crash matrix.
        start = text.index('  - name: "3.12.1"')
        end = text.index("flags:")
        text = text[:start] + text[end:]
    if not releases:
        # Backport scenarios: releases only on request (test_release.py covers them).
        assert text.rstrip().endswith("review_hours: 0")
        text += "  trigger: manual\n"
    p = root / "policy.yaml"
    p.write_text(text)
    return SyncEnv(kind, root, ex, p, root / "state", fake)


@pytest.fixture(params=["local", "github"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> SyncEnv:
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    return make_env(request.param, tmp_path, fake)


def test_first_sync_opens_the_expected_prs(env: SyncEnv) -> None:
    s = env.example.shas
    report = env.sync()
    assert report.problems == []
    refs = env.fork_refs()
    # 3.12.1-stable did not exist: created at its base tag, never elsewhere.
    assert refs["refs/heads/3.12.1-stable"] == s["v3.12.1"]
    prs = {(p.marker.series, p.marker.original): p for p in env.open_prs()}
    expected_311 = {s["A"], s["B"], s["C"], s["D"], s["F"]}
    assert {k for (ser, k) in prs if ser == "3.11.2"} == expected_311
    for (series, key), pr in prs.items():
        assert pr.head == branch_name(series, key)
        assert refs[f"refs/heads/{pr.head}"] == pr.head_sha
        assert pr.base == f"{series}-stable"
        assert "backport" in pr.labels
    d = prs[("3.11.2", s["D"])]
    assert d.draft and "conflicts" in d.labels and d.title.startswith("[conflict] [3.11.2-stable]")
    assert "Lib/ssl.py" in d.body and "stablectl backport" in d.body
    b = prs[("3.11.2", s["B"])]
    assert b.title == "[3.11.2-stable] gh-2100: Fix quadratic time in http.client headers (GH-2101)"
    assert "CVE-2023-24329" in b.body and "security" in b.labels and not b.draft
    c = prs[("3.11.2", s["C"])]
    assert c.marker is not None and c.marker.source == s["C-3.12"]  # rescued by a sibling
    assert "Filter tarfile members with absolute paths." in c.body  # the NEWS entry
    f = prs[("3.11.2", s["F"])]
    assert "security" not in f.labels
    # The pick on the branch is the cherry-pick, trailer included.
    repo = pygit2.Repository(str(env.example.fork))
    msg = repo[pygit2.Oid(hex=b.head_sha)].peel(pygit2.Commit).message
    assert msg.rstrip().endswith(f"(cherry picked from commit {s['B']})")


def test_second_sync_writes_nothing(env: SyncEnv) -> None:
    env.sync()
    refs = env.fork_refs()
    again = env.sync()
    assert again.applied == [] and again.api["writes"] == 0
    assert env.fork_refs() == refs
    assert not [a for a in again.actions if a.kind != "merge"]


def test_dry_run_changes_nothing(env: SyncEnv) -> None:
    refs = env.fork_refs()
    report = env.sync(dry_run=True)
    assert report.dry_run and report.applied == []
    assert {a.kind for a in report.actions} >= {"open", "push", "create-stable"}
    assert env.fork_refs() == refs and env.open_prs() == []


def test_approved_green_prs_merge_and_the_next_sync_is_quiet(env: SyncEnv) -> None:
    env.sync()
    s = env.example.shas
    prs = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    a, b = prs[s["A"]], prs[s["B"]]
    env.review(a.number)
    env.green(a.head_sha)
    env.review(b.number)  # approved but no CI yet: not merged
    report = env.sync()
    merged = [x.target for x in report.applied if x.kind == "merge"]
    assert merged == [f"#{a.number}"]
    assert any(f"#{b.number} not merged" in n and "local-ci" in n for n in report.notices)
    repo = pygit2.Repository(str(env.example.fork))
    tip = repo.references["refs/heads/3.11.2-stable"].resolve().target
    assert f"(cherry picked from commit {s['A']})" in repo[tip].peel(pygit2.Commit).message
    assert f"refs/heads/{a.head}" not in env.fork_refs()  # its branch is gone
    quiet = env.sync()
    assert quiet.api["writes"] == 0, quiet.actions
    # B's PR was not rebased because A merged: its approval still stands.
    assert env.new_forge().get_pr(b.number).head_sha == b.head_sha


def test_revert_upstream_and_arrival_by_hand_close_prs(env: SyncEnv) -> None:
    env.sync()
    s = env.example.shas
    prs = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    up = History(env.example.upstream, clock=2_000_000_000)
    revert = up.revert(s["A"], "main")
    up.commit(
        "3.11",
        f'[3.11] Revert "gh-2000"\n\n(cherry picked from commit {revert})\n',
        {"Lib/urllib/parse.py": up.read(s["A"] + "^", "Lib/urllib/parse.py")},
    )
    # B reaches the stable branch by hand (a maintainer pushed the cherry-pick).
    fork = pygit2.Repository(str(env.example.fork))
    stable = fork.references["refs/heads/3.11.2-stable"]
    b_head = fork[pygit2.Oid(hex=prs[s["B"]].head_sha)].peel(pygit2.Commit)
    # The maintainer's own cherry-pick: the same change, another commit (pushing the PR's
    # head itself would merge the PR, as GitHub records it).
    who = pygit2.Signature("Maint", "maint@example.org", 1_800_000_000, 0)
    by_hand = fork.create_commit(
        None, b_head.author, who, b_head.message, b_head.tree_id, b_head.parent_ids
    )
    stable.set_target(by_hand)
    report = env.sync()
    closed = {x.target: x.detail for x in report.applied if x.kind == "close"}
    assert closed[f"#{prs[s['A']].number}"] == "closed-reverted"
    assert closed[f"#{prs[s['B']].number}"] == "closed-applied"
    assert f"refs/heads/{prs[s['A']].head}" not in env.fork_refs()
    forge = env.new_forge()
    assert forge.get_pr(prs[s["A"]].number).state == "closed"
    assert env.sync().api["writes"] == 0


def test_a_pr_whose_tests_failed_is_picked_again_when_the_branch_moves(env: SyncEnv) -> None:
    """A fix whose test needs another fix (Debian's queue: gh-143925's test imports a helper
    gh-143916 adds) fails on the old tip; once other fixes merge, it is re-picked onto the new
    tip and tested again, instead of keeping its old head forever. A PR whose tests passed
    keeps its head (no needless re-test)."""
    env.sync()
    prs = sorted(
        (p for p in env.open_prs() if p.marker.series == "3.11.2" and not p.draft),
        key=lambda p: p.number,
    )
    first, failing, passing = prs[0], prs[1], prs[2]
    f = env.new_forge()
    f.set_labels(failing.number, sorted({*failing.labels, "tests-failed"}))
    env.review(first.number)
    env.green(first.head_sha)
    report = env.sync()
    assert any(a.kind == "merge" and a.target == f"#{first.number}" for a in report.applied), [
        (a.kind, a.target) for a in report.applied
    ]
    assert "tests-failed" in env.new_forge().get_pr(failing.number).labels  # CI's, kept
    env.sync()  # the tip has moved: the failed PR is picked again onto it
    tip = env.fork_refs()["refs/heads/3.11.2-stable"]
    now = {p.number: p for p in env.open_prs()}
    moved = now[failing.number]
    assert moved.head_sha != failing.head_sha
    repo = pygit2.Repository(str(env.example.fork))
    assert str(repo[moved.head_sha].peel(pygit2.Commit).parents[0].id) == tip
    assert now[passing.number].head_sha == passing.head_sha


def test_maintainer_commands(env: SyncEnv) -> None:
    env.sync()
    s = env.example.shas
    prs = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    f_pr = prs[s["F"]]
    env.comment(f_pr.number, "/stablectl skip", "maint")
    env.comment(f_pr.number, "/stablectl skip", "mallory")
    # An unflagged upstream commit, asked for by a maintainer.
    up = History(env.example.upstream, clock=2_000_000_000)
    extra = up.commit(
        "main",
        "gh-2900: Fix a typo in README (#2901)",
        {"README.rst": "This is Python version 3.13.0 alpha 0 (fixed)\n"},
    )
    env.sync()  # fetch it first: comments name commits the cache must know
    env.comment(prs[s["A"]].number, f"/stablectl backport {extra[:10]} to 3.11.2", "Maint")
    report = env.sync()
    assert report.problems == []
    forge = env.new_forge()
    f_now = forge.get_pr(f_pr.number)
    assert f_now.state == "closed" and "skipped" in f_now.labels
    replies = [
        c.body
        for c in forge.comments_since(
            __import__("datetime").datetime(2000, 1, 1, tzinfo=__import__("datetime").UTC)
        )
    ]
    assert any("@mallory: thank you" in r for r in replies)
    assert any("@Maint: done" in r for r in replies)
    opened = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    assert extra in opened and opened[extra].marker.extra["requested"] == "Maint"
    quiet = env.sync()
    assert quiet.api["writes"] == 0, quiet.actions  # replies once; skip holds; request holds
    assert f_pr.number not in {p.number for p in env.open_prs()}


def test_sync_cli_json_and_exit_codes(
    env: SyncEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STABLE_GH_TOKEN", TOKENS[BOT])
    r = run_cli(
        capsys, "--state-dir", str(env.state), "sync", "--policy", str(env.policy_path), "--json"
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["schema"] == "stablectl.sync/1" and not data["dry_run"]
    assert sum(1 for a in data["actions"] if a["action"] == "open") == 12
    r = run_cli(capsys, "--state-dir", str(env.state), "sync", "--policy", str(env.policy_path))
    assert r.code == 0 and "nothing to do" in r.out


def test_github_actions_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    e = make_env("local", tmp_path, None)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = run_cli(capsys, "--state-dir", str(e.state), "sync", "--policy", str(e.policy_path))
    assert r.code == 0, r.err
    text = summary.read_text()
    assert text.startswith("## stablectl sync") and "| open | 3.11.2 |" in text


def test_demo_runs_the_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "demo", "--dir", str(tmp_path / "demo"), "--json")
    assert r.code == 0, r.err
    data = r.json()
    steps = [s["step"] for s in data["steps"]]
    assert steps == ["sync", "ci", "approve", "sync", "ci", "approve-release", "sync", "sync"]
    first = data["steps"][0]["report"]["actions"]
    opened = [a for a in first if a["action"] == "open"]
    assert len(opened) == 12 + 1  # 12 backports and the release PR of 3.11.2 (H, I on it)
    assert sum(1 for p in data["prs"] if p["draft"]) == 2
    assert all(r["conclusion"] == "success" for r in data["steps"][1]["runs"])
    merged = [a for a in data["steps"][3]["report"]["actions"] if a["action"] == "merge"]
    assert len(merged) == len(data["steps"][2]["prs"]) == 10
    assert [r["conclusion"] for r in data["steps"][4]["runs"]] == ["success"] * 2
    assert len(data["steps"][5]["prs"]) == 2  # a release PR per series
    released = {a["target"] for a in data["steps"][6]["report"]["actions"] if a["action"] == "tag"}
    assert released == {"v3.11.2.1", "v3.12.1.1"}
    assert data["steps"][7]["report"]["actions"] == []
    (r311,) = [x for x in data["releases"] if x["tag"] == "v3.11.2.1"]
    assert "Python-3.11.2.1.tar.xz" in r311["assets"] and "SHA256SUMS" in r311["assets"]
    sums = r311["sha256sums"].splitlines()
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((Path(r311["directory"]) / name).read_bytes()).hexdigest() == digest
    r = run_cli(capsys, "demo", "--dir", str(tmp_path / "demo"))
    assert r.code == 2 and "not empty" in r.err
    r = run_cli(capsys, "demo", "--dir", str(tmp_path / "demo2"))
    assert r.code == 0 and "10 merged" in r.out and "draft: conflict" in r.out
    assert "Released v3.11.2.1" in r.out and "Python-3.11.2.1.tar.xz  sha256" in r.out


def test_resolve_a_conflict_by_hand(tmp_path: Path) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2")
    e.sync()
    s = e.example.shas
    work = tmp_path / "resolve"
    r = e.cli("backport", s["D"][:10], "--series", "3.11.2", "--dir", str(work))
    assert r.returncode == 0, r.stderr
    assert "Lib/ssl.py" in r.stdout
    text = (work / "Lib/ssl.py").read_text()
    assert "<<<<<<<" in text
    r = subprocess.run(
        [sys.executable, "-m", "stablectl", "backport", "--continue"],
        cwd=work,
        capture_output=True,
        text=True,
        env=e.env(),
    )
    assert r.returncode == 2 and "still unresolved: Lib/ssl.py" in r.stderr
    resolved = "".join(
        ln for ln in text.splitlines(True) if not ln.startswith(("<<<<<<<", "=======", ">>>>>>>"))
    )
    (work / "Lib/ssl.py").write_text(resolved)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    r = subprocess.run(
        [sys.executable, "-m", "stablectl", "backport", "--continue"],
        cwd=work,
        capture_output=True,
        text=True,
        env=e.env(),
    )
    assert r.returncode == 0, r.stderr
    prs = [p for p in e.open_prs() if p.marker.original == s["D"]]
    assert len(prs) == 1 and not prs[0].draft and prs[0].marker.extra["manual"] == "1"
    pr = prs[0]
    # A maintainer then changes the resolution by hand, keeping the old record: approved and
    # green, it is still not merged, and the notice gives the exact trailer to record.
    git = ["git", "-C", str(work)]
    with open(work / "Lib/ssl.py", "a") as fh:
        fh.write("# one more line, by hand\n")
    subprocess.run([*git, "commit", "-qa", "--amend", "--no-edit"], check=True, env=e.env())
    subprocess.run([*git, "push", "-qf", str(e.example.fork), f"HEAD:{pr.head}"], check=True)
    pr = e.new_forge().get_pr(pr.number)
    e.review(pr.number)
    e.green(pr.head_sha)
    report = e.sync()
    assert not any(a.kind == "merge" for a in report.applied)
    (notice,) = [n for n in report.notices if f"PR #{pr.number} not merged: stablectl" in n]
    assert "changed after review" in notice and "add the trailer line `" in notice
    line = notice.split("add the trailer line `")[1].split("`")[0]
    msg = subprocess.run([*git, "log", "-1", "--format=%B"], capture_output=True, text=True)
    fixed = "\n".join(
        ln for ln in msg.stdout.splitlines() if not ln.startswith("Stablectl-Adapted:")
    )
    subprocess.run([*git, "commit", "-q", "--amend", "-m", f"{fixed}\n{line}\n"], check=True)
    subprocess.run([*git, "push", "-qf", str(e.example.fork), f"HEAD:{pr.head}"], check=True)
    pr = e.new_forge().get_pr(pr.number)
    e.review(pr.number)
    e.green(pr.head_sha)
    report = e.sync()
    assert [a.target for a in report.applied if a.kind == "merge"] == [f"#{pr.number}"]
    # Both sides kept: not upstream's change. The commit records by how much and where it was
    # reviewed (issue 17), and `verify` accepts it only as recorded.
    msg = subprocess.run(
        ["git", "--git-dir", str(e.example.fork), "log", "-1", "--format=%B", "3.11.2-stable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rec = adapted_of(msg)
    assert rec is not None and rec.source == s["D"] and rec.pr == pr.number and rec.lines > 0
    assert "adapted: " in r.stdout


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_syncs_never_duplicate(env: SyncEnv, n: int) -> None:
    """Two and four syncs at once: on GitHub as so many machines (own caches), with the local
    forge on one machine (one state directory, where they take turns)."""

    def state(i: int) -> str:
        return str(env.root / f"state{i}") if env.kind == "github" else str(env.state)

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stablectl", "sync", "--policy", str(env.policy_path), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env.env(), STABLECTL_STATE=state(i)),
        )
        for i in range(n)
    ]
    codes = []
    for p in procs:
        _out, err = p.communicate(timeout=300)
        codes.append((p.returncode, err[-500:]))
    prs = env.new_forge().list_prs("all")
    keys = [(p.marker.series, p.marker.original) for p in prs if p.state == "open"]
    assert len(keys) == len(set(keys)) == 12, codes
    quiet = env.sync()
    assert quiet.api["writes"] == 0


@pytest.mark.parametrize("kind", ["local", "github"])
def test_crash_after_each_write_point_recovers(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL right after write N of a first sync, for every N; then sync again: the same
    end state as an uninterrupted run, no duplicate PR, no stray branch, and quiet after."""
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    ref = make_env(kind, tmp_path / "ref", fake, series="3.11.2")
    r = ref.cli("sync", "--json")
    assert r.returncode == 0, r.stderr
    import json

    data = json.loads(r.stdout)
    assert data["applied"] == 10  # 5 branches pushed + 5 PRs opened (labels go with them)
    writes = data["write_points"]
    # One `git push` for the 5 branches, then 5 PR opens (GitHub: each open and its labels,
    # and for the 3 clean ones the dispatch of stable-tests and the pending status).
    assert writes == (6 if kind == "local" else 17)
    assert data["api"]["writes"] == (5 if kind == "local" else 16)
    expected = ref.picture()
    for n in range(1, writes + 1):
        e = make_env(kind, tmp_path / f"crash{n}", fake, series="3.11.2")
        r = e.cli("sync", crash_after=n)
        assert r.returncode == -9, (n, r.returncode, r.stderr)
        r = e.cli("sync")
        assert r.returncode == 0, (n, r.stderr)
        assert e.picture() == expected, n
        assert e.sync().api["writes"] == 0, n


def test_pr_follows_a_better_source(env: SyncEnv) -> None:
    """Fix B was picked from its original on main; then upstream backports it to 3.11: the
    PR moves to that backport (the series' own branch ranks first) and says so."""
    env.sync()
    s = env.example.shas
    prs = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    b = prs[s["B"]]
    assert b.marker is not None and b.marker.source == s["B"]
    up = History(env.example.upstream, clock=2_000_000_000)
    bp = up.backport(s["B"], "3.11")
    report = env.sync()
    assert {a.kind for a in report.applied} == {"push", "update"}
    now = env.new_forge().get_pr(b.number)
    assert now.marker is not None and now.marker.source == bp
    assert now.head_sha != b.head_sha and bp[:10] in now.body
    assert env.sync().api["writes"] == 0


def test_fixes_that_do_not_commute_are_stacked_and_merged_in_order(tmp_path: Path) -> None:
    """Fix X adds a check in two places; fix Y (later) removes one of them. Picked standalone,
    Y "applies" on a tip without X (deleting a line that is not there), and merging X after Y
    brings the line back. Stacked on X and merged after it, the stable branch ends as upstream
    did. (Seen on Debian's python3.11 queue: CVE-2026-4519's three webbrowser fixes.)"""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/w.py": "def a():\n    pass\n\ndef b():\n    pass\n"})
    h.tag("v1", base)
    x = h.commit(
        "main",
        "gh-1: Add checks (#2)",
        {
            "Lib/w.py": "def a():\n    check()\n    pass\n\ndef b():\n    check()\n    pass\n",
            "Misc/NEWS.d/next/Security/x.rst": "X\n",
        },
    )
    y = h.commit(
        "main",
        "gh-3: b needs no check (#4)",
        {
            "Lib/w.py": "def a():\n    check()\n    pass\n\ndef b():\n    pass\n",
            "Misc/NEWS.d/next/Security/y.rst": "Y\n",
        },
    )
    line = Line.of(h, tmp_path, "1-stable", base)
    fork = line.fork
    policy = line.write_policy(
        'name: "1", base: v1, branch: 1-stable, sources: [main], since: 2000-01-01',
        project="nc",
        more="maintainers: [maint]\nrelease: {trigger: manual}\n",
    )
    state = tmp_path / "state"
    # The controller is the policy's `identity.name` (no `identities.controller` here).
    forge = LocalForge(state / "forge" / "nc.sqlite", fork.path, slug="nc", actor="stablectl")

    def sync() -> SyncReport:
        eng = Workspace(load_policy(policy), state, committer_time=1_700_000_000)
        try:
            return Syncer(eng, forge, policy_file=str(policy)).run()
        finally:
            eng.close()

    sync()
    prs = {p.marker.original: p for p in forge.list_prs()}
    assert prs[y].marker.extra["depends"] == x[:12]  # stacked on X
    for p in prs.values():
        forge.review(p.number, "maint", "APPROVED")
    first = sync()
    assert [a.target for a in first.applied if a.kind == "merge"] == [f"#{prs[x].number}"]
    second = sync()  # Y's stacked head sits right on the tip X's merge left: only its body
    assert {a.kind for a in second.applied} == {"update"}  # changes (no "depends" any more)
    ypr = forge.get_pr(prs[y].number)
    assert not ypr.marker.extra.get("depends")
    forge.review(ypr.number, "maint", "APPROVED")
    sync()
    tree = fork.repo.references["refs/heads/1-stable"].peel(pygit2.Commit).tree
    assert (
        fork.repo[tree["Lib/w.py"].id].data
        == h.repo[h.repo[y].peel(pygit2.Commit).tree["Lib/w.py"].id].data
    )


def test_issue_rules_read_the_current_titles_of_the_issues_commits_name(env: SyncEnv) -> None:
    """CPython retitles an issue `[CVE-…] …` once a CVE is assigned, after the fix landed: an
    issue rule flags the commit naming it and carries the CVE; its search is asked once per
    refresh period, not per commit or per run."""
    up = History(env.example.upstream, clock=2_000_000_000)
    named = up.commit(
        "main",
        "gh-2970: Reject brackets in hostnames (#2971)",
        {"Lib/urllib/parse.py": "# strict\n"},
    )
    other = up.commit("main", "gh-2980: Refactor urlparse (#2981)", {"Lib/w.py": "# r\n"})
    env.policy_path.write_text(
        env.policy_path.read_text().replace(
            "flags:\n",
            "flags:\n  - name: issue-cve\n    security: true\n    issues:\n"
            "      search: CVE in:title\n      title: '\\bCVE-\\d{4}-\\d{4,}\\b'\n",
            1,
        )
    )
    f = env.new_forge()
    issues = {
        2970: "[CVE-2025-0938] urlparse does not flag hostname *containing* [ or ] as incorrect",
        2980: "urlparse refactoring (no CVE here)",
        2990: "CVE follow-up tracking without an id",
    }
    if isinstance(f, LocalForge):
        for n, title in issues.items():
            f.upstream.record_issue(n, title, ["type-bug"])
    else:
        assert env.fake is not None
        st = env.fake.add_repo("example/cpython", env.example.upstream, writers=set())
        for n, title in issues.items():
            st.issues[n] = {"title": title, "labels": ["type-bug"], "state": "closed"}
    report = env.sync(dry_run=True)
    fixes = {pf.candidate.fix.key: pf.candidate.fix for sp in report.plan.series for pf in sp.fixes}
    assert other not in fixes
    fix = fixes[named]
    assert [h.rule for h in fix.flags] == ["issue-cve"] and fix.security
    assert fix.cves == ["CVE-2025-0938"]
    assert "issue gh-2970 '[CVE-2025-0938] urlparse" in fix.flags[0].reason
    assert report.plan.stats["issue_searches"] == 1
    assert not any("issue rules need the forge" in e for e in report.plan.errors)
    # The next run within refresh_hours reads the kept answer: no search request at all.
    again = env.sync(dry_run=True)
    assert again.plan.stats["issue_searches"] == 0
    assert named in {pf.candidate.fix.key for sp in again.plan.series for pf in sp.fixes}


def test_label_rules_read_the_upstream_prs_labels(env: SyncEnv) -> None:
    """A fix whose upstream PR carries the security label is flagged (and only that one)."""
    up = History(env.example.upstream, clock=2_000_000_000)
    labelled = up.commit(
        "main", "gh-2950: Tighten zipfile limits (#2951)", {"Lib/zipfile.py": "# tightened\n"}
    )
    up.commit("main", "gh-2960: Refactor zipfile (#2961)", {"Lib/zipfile.py": "# refactored\n"})
    env.policy_path.write_text(
        env.policy_path.read_text().replace(
            "flags:\n",
            "flags:\n  - name: security-label\n    security: true\n    labels: [type-security]\n",
            1,
        )
    )
    f = env.new_forge()
    if isinstance(f, LocalForge):
        f.upstream.record_pr(2951, ["type-security"], [labelled])
        f.upstream.record_pr(2961, ["type-feature"], [])
    else:
        from tests.ghserver.server import PR

        assert env.fake is not None
        st = env.fake.add_repo("example/cpython", env.example.upstream, writers=set())
        for n, labels in ((2951, ["type-security"]), (2961, ["type-feature"])):
            st.prs[n] = PR(
                n,
                "x",
                "",
                "b",
                "main",
                labelled,
                labelled,
                "dev",
                False,
                state="closed",
                merged_at="2026-01-01T00:00:00Z",
                labels=labels,
            )
    report = env.sync(dry_run=True)
    keys = {pf.candidate.fix.key for sp in report.plan.series for pf in sp.fixes}
    assert labelled in keys
    fix = next(
        pf.candidate.fix
        for sp in report.plan.series
        for pf in sp.fixes
        if pf.candidate.fix.key == labelled
    )
    assert [h.rule for h in fix.flags] == ["security-label"] and fix.security
    assert not any("label rules need the forge" in e for e in report.plan.errors)


def test_a_fix_that_does_not_concern_the_line_gets_no_pr_but_is_listed(env: SyncEnv) -> None:
    """A security fix for a module the line never had: no draft PR nobody can act on; plan,
    status.json, the status page's data and the feed say "not applicable: why"; a maintainer
    can still ask for it, and gets a draft."""
    env.sync()
    up = History(env.example.upstream, clock=2_000_000_000)
    up.commit("main", "gh-3000: Add the zoneinfo cache (#3001)", {"Lib/zicache.py": "x = 1\n"})
    fix = up.commit(
        "main",
        "gh-3010: Bound the zoneinfo cache (#3011)\n\nFixes CVE-2030-0001.\n",
        {
            "Lib/zicache.py": "x = 2  # bounded\n",
            "Misc/NEWS.d/next/Security/2030-01-01-00-00-00.gh-issue-3010.rst": "CVE-2030-0001\n",
        },
    )
    report = env.sync()
    assert report.problems == []
    fixes = {f["key"]: f for f in report.to_json()["plan"]["series"][0]["fixes"]}  # type: ignore[index]
    assert fixes[fix]["status"] == "not-applicable"
    assert (
        fixes[fix]["not_applicable"] == "changes Lib/zicache.py, which 3.11.2-stable does not have"
    )
    assert fix not in {p.marker.original for p in env.open_prs()}
    from stablectl.controller.status import feed_entries

    status = status_of(env)
    (na,) = status["series"][0]["not_applicable"]
    assert na["original"] == fix and na["security"] and na["cves"] == ["CVE-2030-0001"]
    assert status["cves"]["CVE-2030-0001"] == [
        {"series": "3.11.2", "state": "not-applicable", "reason": na["reason"]}
    ]
    titles = [e["summary"] for e in feed_entries(status)]
    assert f"not applicable to 3.11.2: {na['reason']}" in titles
    # A maintainer asks for it anyway: a draft PR carrying the conflict.
    some_pr = env.open_prs()[0]
    env.comment(some_pr.number, f"/stablectl backport {fix[:10]} to 3.11.2", "maint")
    env.sync()
    opened = {p.marker.original: p for p in env.open_prs()}
    assert fix in opened and opened[fix].draft
    assert opened[fix].marker.extra["requested"] == "maint"
    assert env.sync().api["writes"] == 0


def test_a_fix_that_needs_an_earlier_commit_carries_it_in_its_pr(env: SyncEnv) -> None:
    """3.11 took P (rewrites a line of mod15.c) after v3.11.2, then the security fix F that
    changes P's line: F's PR carries P's pick first, says why, is labelled `prerequisite`, and
    merges as a whole; neither sync afterwards writes anything."""
    env.sync()
    up = History(env.example.upstream, clock=2_000_000_000)
    path = "Modules/mod15.c"
    text = up.read("main", path)
    p = up.commit("main", "gh-3100: Rename the mod15 table (#3101)", {path: edit(text, 10, "P")})
    f = up.commit(
        "main",
        "gh-3110: Bound the mod15 table (#3111)",
        {
            path: edit(edit(text, 10, "P"), 10, "P, bounded"),
            "Misc/NEWS.d/next/Security/2030-02-01-00-00-00.gh-issue-3110.rst": "Bounded.\n",
        },
    )
    p311 = up.backport(p, "3.11")
    f311 = up.backport(f, "3.11")
    report = env.sync()
    assert report.problems == []
    fixes = {x["key"]: x for x in report.to_json()["plan"]["series"][0]["fixes"]}  # type: ignore[index]
    assert fixes[f]["status"] == "new-clean-with-prerequisites"
    assert [x["commit"] for x in fixes[f]["prerequisites"]] == [p311]
    pr = next(x for x in env.open_prs() if x.marker.original == f)
    assert "prerequisite" in pr.labels and not pr.draft
    assert (
        f"Needs upstream [`{p311[:10]}`]" in pr.body or f"Needs upstream `{p311[:10]}`" in pr.body
    )
    assert f"it writes lines this fix changes, at {path}:11." in pr.body
    assert pr.marker.extra["prerequisites"] == p311[:12]
    assert p not in {x.marker.original for x in env.open_prs()}  # no PR of its own
    repo = pygit2.Repository(str(env.example.fork))
    head = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit)
    first = head.parents[0]
    assert f"(cherry picked from commit {f311})" in head.message
    assert f"(cherry picked from commit {p311})" in first.message
    assert f"Stablectl-Prerequisite-For: {f}" in first.message
    assert str(first.parents[0].id) == env.fork_refs()["refs/heads/3.11.2-stable"]
    assert env.sync().api["writes"] == 0
    (pending,) = [x for x in status_of(env)["series"][0]["pending"] if x["original"] == f]
    assert pending["outcome"] == "new-clean-with-prerequisites"
    assert pending["prerequisites"][0]["commit"] == p311
    env.review(pr.number)
    env.green(pr.head_sha)
    env.sync()
    tip = repo.references["refs/heads/3.11.2-stable"].peel(pygit2.Commit)
    assert "Stablectl-Prerequisite-For" in tip.parents[0].message
    assert (
        repo[tip.tree[path].id].data == up.repo[up.repo[f].peel(pygit2.Commit).tree[path].id].data
    )
    after = {x["key"]: x for x in env.sync().to_json()["plan"]["series"][0]["fixes"]}  # type: ignore[index]
    assert after[f]["status"] == "applied"
    merged = {x["commit"]: x for x in status_of(env)["series"][0]["merged_unreleased"]}
    assert merged[str(tip.parents[0].id)]["prerequisite_for"] == f
    assert merged[str(tip.id)]["original"] == f and merged[str(tip.id)]["security"]


def status_of(env: SyncEnv) -> Any:
    from stablectl.controller.status import collect

    eng = Workspace(load_policy(env.policy_path), env.state)
    try:
        return collect(
            eng.policy,
            eng.plan(["3.11.2"]),
            eng.cache.repo,
            fork_tip=eng.cache.fork_branch,
            forge=env.new_forge(),
            releases_dir=env.state / "releases",
        )
    finally:
        eng.close()


def edit(text: str, index: int, tag: str) -> str:
    ls = text.splitlines(keepends=True)
    ls[index] = ls[index].rstrip("\n") + f"  /* {tag} */\n"
    return "".join(ls)


def test_a_build_profile_closes_what_the_line_does_not_build(env: SyncEnv) -> None:
    """F fixes Modules/mod08.c, which this distribution does not build: once the series'
    build profile says so, F's PR is closed as not applicable, status lists it with the
    reason (never silently dropped), and the next sync writes nothing."""
    s = env.example.shas
    env.sync()

    def open_311() -> set[str]:
        return {p.marker.original for p in env.open_prs() if p.marker.series == "3.11.2"}

    assert s["F"] in open_311()
    text = env.policy_path.read_text()
    env.policy_path.write_text(
        text.replace(
            "    eol: 2027-10-31\n", '    eol: 2027-10-31\n    not_built: ["Modules/mod08.c"]\n'
        )
    )
    report = env.sync()
    assert report.problems == []
    closed = [a.payload for a in report.applied if isinstance(a.payload, ClosePR)]
    assert [(c.comment_kind, c.comment_detail) for c in closed] == [
        (
            "closed-not-applicable",
            "not built by this line: it changes only Modules/mod08.c (series 3.11.2: not_built)",
        )
    ]
    assert s["F"] not in open_311()
    (na,) = status_of(env)["series"][0]["not_applicable"]
    assert na["original"] == s["F"] and na["reason"].startswith("not built by this line")
    assert env.sync().api["writes"] == 0


def test_a_line_whose_branch_ended_takes_fixes_from_the_newer_branches(env: SyncEnv) -> None:
    """3.11.2 reads only its own branch, which has ended: with `upstream_end` it reads 3.12
    (the nearest newer branch upstream still commits to) and then main, so B (main only)
    and C (3.12's adapted backport) get their PRs."""
    s = env.example.shas
    text = env.policy_path.read_text()
    own_only = text.replace(
        '    sources: ["3.11", "main"]\n    eol: 2027-10-31\n',
        '    sources: ["3.11"]\n    eol: 2027-10-31\n',
    )
    assert own_only != text
    env.policy_path.write_text(own_only)
    env.sync()
    before = {p.marker.original for p in env.open_prs() if p.marker.series == "3.11.2"}
    assert s["B"] not in before and s["C"] not in before
    env.policy_path.write_text(
        own_only.replace(
            '    sources: ["3.11"]\n',
            '    sources: ["3.11"]\n    upstream_end: {date: 2000-01-01}\n',
        )
    )
    report = env.sync()
    assert report.problems == []
    prs = {p.marker.original: p for p in env.open_prs() if p.marker.series == "3.11.2"}
    assert s["B"] in prs and s["C"] in prs
    assert prs[s["C"]].marker.source == s["C-3.12"]
    (sp,) = [x for x in report.plan.series if x.series.name == "3.11.2"]
    assert sp.selection.searched == ("3.11", "3.12", "main")
