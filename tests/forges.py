"""Harnesses that give the contract suite one forge of each kind plus the moves a test needs
that stablectl itself never makes (people reviewing, CI reporting, pushes, upstream PRs)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
import requests

from stablectl.forge.base import Forge, Release, ReviewState, StatusState, status_to_check
from stablectl.forge.github import GitHubForge
from stablectl.forge.local import LocalForge
from stablectl.policy import LOCAL_CI_IDENTITY
from tests.ghserver.server import PR, FakeGitHub

SLUG = "acme/cpython"
UPSTREAM = "python/cpython"
BOT, MAINTAINER, READER = "stablectl-bot", "alice", "mallory"
CI = "github-actions[bot]"  # what GitHub's Actions workflows report as
TOKENS = {
    BOT: "ghp_bot_token_0001",
    MAINTAINER: "ghp_alice_token_0002",
    READER: "ghp_reader_token_003",
    CI: "ghs_actions_token_0004",
}


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
    }
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return r.stdout.strip()


@dataclass
class ForkRepo:
    """A bare fork with a stable branch, two backport branches and a release tag, plus a work
    tree to push from."""

    bare: Path
    work: Path
    shas: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, root: Path) -> ForkRepo:
        bare, work = root / "fork.git", root / "work"
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "-q", "--bare", "-b", "main", str(bare))
        git(root, "init", "-q", "-b", "main", str(work))
        (work / "Lib").mkdir()
        (work / "Lib" / "a.py").write_text("x = 1\n")
        (work / "Lib" / "b.py").write_text("y = 1\n")
        git(work, "add", "-A")
        git(work, "commit", "-qm", "Python 3.11.2")
        git(work, "tag", "v3.11.2")
        git(work, "branch", "3.11.2-stable")
        fork = cls(bare, work)
        fork.shas["base"] = git(work, "rev-parse", "HEAD")
        for name, path, text in (("aaa", "a.py", "x = 2\n"), ("bbb", "b.py", "y = 2\n")):
            git(work, "checkout", "-q", "-b", f"stablectl/3.11.2/{name}", "3.11.2-stable")
            (work / "Lib" / path).write_text(text)
            git(
                work,
                "commit",
                "-qam",
                f"[3.11.2-stable] gh-1: fix {name}\n\n(cherry picked from commit {name * 13}a)",
            )
            fork.shas[name] = git(work, "rev-parse", "HEAD")
        git(work, "checkout", "-q", "3.11.2-stable")
        git(work, "tag", "-a", "-m", "3.11.2.1", "v3.11.2.1")
        git(work, "push", "-q", str(bare), "--all")
        git(work, "push", "-q", str(bare), "--tags")
        return fork

    def commit_on(self, branch: str, path: str, text: str, message: str) -> str:
        git(self.work, "checkout", "-q", branch)
        (self.work / "Lib" / path).write_text(text)
        git(self.work, "commit", "-qam", message)
        git(self.work, "push", "-q", "-f", str(self.bare), branch)
        return git(self.work, "rev-parse", "HEAD")

    def tip(self, branch: str) -> str:
        return str(pygit2.Repository(str(self.bare)).references[f"refs/heads/{branch}"].target)


class Harness:
    kind: str
    forge: Forge
    fork: ForkRepo

    def review(self, number: int, user: str, state: ReviewState) -> None:
        raise NotImplementedError

    def check_run(self, sha: str, name: str, conclusion: str | None) -> None:
        """A check run by the CI (GitHub Actions' app; the local forge's CI)."""
        raise NotImplementedError

    def status(self, sha: str, name: str, state: StatusState, *, by: str | None = None) -> None:
        """A commit status created by the CI identity, or by `by` (a writer on the fork)."""
        raise NotImplementedError

    def merge_by_hand(self, branch: str, sha: str, *, by: str = READER) -> None:
        """A writer moves `branch` to `sha` (a fast-forward), outside stablectl."""
        raise NotImplementedError

    def upstream_pr(self, number: int, labels: list[str], shas: list[str]) -> None:
        raise NotImplementedError

    def upstream_issue(self, number: int, title: str, labels: list[str]) -> None:
        """An upstream issue as it is now (created or retitled/relabelled)."""
        raise NotImplementedError

    def raw_pr(self, head: str, base: str, title: str, body: str) -> int:
        """A PR opened by a person (no marker)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalHarness(Harness):
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.fork = ForkRepo.build(root)
        self.local = LocalForge(
            root / "state" / "forge" / "t.sqlite", self.fork.bare, slug=SLUG, actor=BOT
        )
        self.forge = self.local

    def review(self, number: int, user: str, state: ReviewState) -> None:
        self.local.review(number, user, state)

    def check_run(self, sha: str, name: str, conclusion: str | None) -> None:
        status = "completed" if conclusion else "in_progress"
        self.local.record_check(
            name, sha, status, conclusion, f"local://ci/{name}", creator=LOCAL_CI_IDENTITY
        )

    def status(self, sha: str, name: str, state: StatusState, *, by: str | None = None) -> None:
        c = status_to_check(name, state, f"local://ci/{name}")
        self.local.record_check(
            name, sha, c.status, c.conclusion, c.url, kind="status", creator=by or LOCAL_CI_IDENTITY
        )

    def merge_by_hand(self, branch: str, sha: str, *, by: str = READER) -> None:
        git(self.fork.work, "push", "-q", str(self.fork.bare), f"{sha}:refs/heads/{branch}")

    def upstream_pr(self, number: int, labels: list[str], shas: list[str]) -> None:
        self.local.upstream.record_pr(number, labels, shas)

    def upstream_issue(self, number: int, title: str, labels: list[str]) -> None:
        self.local.upstream.record_issue(number, title, labels)

    def raw_pr(self, head: str, base: str, title: str, body: str) -> int:
        actor, self.local.actor = self.local.actor, "someone"
        try:
            return self.local.open_pr(head, base, title, body).number
        finally:
            self.local.actor = actor

    def close(self) -> None:
        self.local.close()


class GitHubHarness(Harness):
    kind = "github"

    def __init__(self, root: Path, fake: FakeGitHub, **forge_kwargs: Any) -> None:
        self.fork = ForkRepo.build(root)
        self.fake = fake
        for login, token in TOKENS.items():
            fake.add_token(token, login)
        self.repo = fake.add_repo(SLUG, self.fork.bare, writers={BOT, MAINTAINER, CI})
        up = root / "upstream.git"
        git(root, "clone", "-q", "--bare", str(self.fork.bare), str(up))
        self.upstream = fake.add_repo(UPSTREAM, up, writers={MAINTAINER})
        self.sleeps: list[float] = []
        self.gh = self.make_forge(**forge_kwargs)
        self.forge = self.gh

    def make_forge(self, token: str | None = None, **kwargs: Any) -> GitHubForge:
        import time

        def sleep(s: float) -> None:
            self.sleeps.append(s)
            time.sleep(min(s, 3.0))

        args: dict[str, Any] = dict(
            api_url=self.fake.base,
            fork=SLUG,
            upstream=UPSTREAM,
            token=token if token is not None else TOKENS[BOT],
            state_dir=self.fork.bare.parent / "state",
            backoff=(0.01, 0.05),
            sleep=sleep,
        )
        args.update(kwargs)
        return GitHubForge(**args)

    def api(self, method: str, path: str, user: str, json: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.fake.base}{path}",
            json=json,
            timeout=10,
            headers={"Authorization": f"token {TOKENS[user]}"},
        )

    def review(self, number: int, user: str, state: ReviewState) -> None:
        event = {
            "APPROVED": "APPROVE",
            "CHANGES_REQUESTED": "REQUEST_CHANGES",
            "COMMENTED": "COMMENT",
        }[state]
        r = self.api("POST", f"/repos/{SLUG}/pulls/{number}/reviews", user, {"event": event})
        r.raise_for_status()

    def check_run(self, sha: str, name: str, conclusion: str | None) -> None:
        body: dict[str, Any] = {"name": name, "head_sha": sha}
        if conclusion:
            body |= {"status": "completed", "conclusion": conclusion}
        else:
            body |= {"status": "in_progress"}
        self.api("POST", f"/repos/{SLUG}/check-runs", CI, body).raise_for_status()

    def status(self, sha: str, name: str, state: StatusState, *, by: str | None = None) -> None:
        user = by or CI
        if user not in TOKENS:
            self.fake.add_token(f"tok-{user}", user)
            TOKENS[user] = f"tok-{user}"
        self.repo.writers.add(user)
        body = {"state": state, "context": name, "target_url": f"https://ci.example/{name}"}
        self.api("POST", f"/repos/{SLUG}/statuses/{sha}", user, body).raise_for_status()

    def merge_by_hand(self, branch: str, sha: str, *, by: str = READER) -> None:
        self.repo.writers.add(by)
        body = {"sha": sha, "force": False}
        self.api("PATCH", f"/repos/{SLUG}/git/refs/heads/{branch}", by, body).raise_for_status()

    def upstream_issue(self, number: int, title: str, labels: list[str]) -> None:
        self.upstream.issues[number] = {
            "title": title,
            "labels": labels,
            "state": "closed",
            "body": "reported",
        }

    def upstream_pr(self, number: int, labels: list[str], shas: list[str]) -> None:
        st = self.upstream
        base = self.fork.shas["base"]
        st.prs[number] = PR(
            number,
            f"gh-{number}",
            "",
            "fix",
            "main",
            shas[0],
            base,
            "dev",
            False,
            state="closed",
            merged_at="2026-01-01T00:00:00Z",
            labels=list(labels),
        )
        for s in shas:
            st.commit_pulls.setdefault(s, []).append(number)

    def raw_pr(self, head: str, base: str, title: str, body: str) -> int:
        r = self.api(
            "POST",
            f"/repos/{SLUG}/pulls",
            MAINTAINER,
            {"head": head, "base": base, "title": title, "body": body},
        )
        r.raise_for_status()
        return int(r.json()["number"])

    def close(self) -> None:
        self.gh.close()


HarnessFactory = Callable[[str], Harness]


def local_asset(forge: LocalForge, release: Release, name: str) -> bytes:
    """The bytes the local forge keeps for a release asset, read from its database."""
    with sqlite3.connect(forge.db_path) as db:
        row = db.execute(
            "SELECT data FROM assets WHERE release = ? AND name = ?", (release.id, name)
        ).fetchone()
    assert row is not None, f"release {release.tag} has no asset {name!r}"
    return bytes(row[0])
