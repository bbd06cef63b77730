"""The embedded forge: one SQLite file under the state directory, the fork a local bare repo.

It is what `stablectl demo` and people without GitHub run on. Semantics follow GitHub's where
the controller can tell the difference: one open PR per head branch, a PR's head follows its
branch, reviews record the commit they were given on, a merge names the head it expects and
only ever moves the base branch forward (compare-and-swap on the ref).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

import pygit2

from stablectl.errors import UsageError
from stablectl.forge.base import (
    CheckState,
    CIRequest,
    Comment,
    ConflictError,
    ForgeStats,
    HeadMovedError,
    MergeMethod,
    NotFoundError,
    PullRequest,
    Review,
    ReviewState,
    StatusState,
    UpstreamIssue,
    parse_time,
    status_to_check,
)
from stablectl.forge.local_db import connect, timestamp, transaction
from stablectl.forge.local_releases import LocalReleases
from stablectl.forge.local_upstream import LocalUpstream
from stablectl.gitops.git import git
from stablectl.gitops.objects import contains
from stablectl.gitops.rebase import RebaseConflict, commits_between, rebase
from stablectl.policy import LOCAL_CI_IDENTITY

CHECK_NAME = "local-ci"  # the check `stablectl ci run` records on PR heads


def fork_path(url: str) -> Path:
    """The local fork repository a policy's `fork.git` names (a path or a file:// URL)."""
    if url.startswith("file://"):
        url = url[7:]
    if "://" in url or url.startswith("git@"):
        raise UsageError(
            f"forge.kind is 'local' but fork.git is a remote URL ({url}); the local forge "
            "needs a local bare repository (or set forge.kind: github)"
        )
    return Path(url).expanduser()


class LocalForge(LocalReleases):
    kind = "local"

    def __init__(
        self, db_path: Path, fork_git: Path, *, slug: str, actor: str, ci_identity: str = ""
    ) -> None:
        self.db_path = db_path
        self.fork_git = fork_git
        self.slug = slug
        self.actor = actor  # who this client writes as (the forge's authenticated user)
        self.ci_identity = ci_identity or LOCAL_CI_IDENTITY  # who `stablectl ci run` reports as
        self.stats = ForgeStats()
        if not (fork_git / "HEAD").exists() and not (fork_git / ".git").exists():
            raise NotFoundError(f"local fork repository {fork_git} does not exist")
        self._db = connect(db_path)
        self.upstream = LocalUpstream(self._db, self.stats)

    # ---------------------------------------------------------- plumbing

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    def _repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.fork_git))

    def _branch_sha(self, branch: str) -> str | None:
        ref = self._repo().references.get(f"refs/heads/{branch}")
        return str(ref.resolve().target) if ref is not None else None

    def _url(self, kind: str, number: int) -> str:
        return f"local://{self.slug}/{kind}/{number}"

    def _row(self, number: int) -> sqlite3.Row:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM prs WHERE number = ?", (number,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"PR #{number} not found on {self.slug}")
        return row

    def _pr(self, row: sqlite3.Row) -> PullRequest:
        head_sha = row["head_sha"]
        if row["state"] == "open":
            live = self._branch_sha(row["head"])
            if live is not None and live != head_sha:
                head_sha = live
                self._db.execute(
                    "UPDATE prs SET head_sha = ?, updated_at = ? WHERE number = ?",
                    (live, timestamp(), row["number"]),
                )
            if contains(self._repo(), self._branch_sha(row["base"]), head_sha):
                # As GitHub: a base pushed onto the head merges the PR; who pushed is not
                # recorded here, so merged_by stays unknown (never the controller).
                self._db.execute(
                    "UPDATE prs SET state = 'merged', merge_sha = ?, merged_by = NULL,"
                    " merged_at = ?, updated_at = ? WHERE number = ? AND state = 'open'",
                    (head_sha, timestamp(), timestamp(), row["number"]),
                )
                row = self._row(row["number"])
        labels = tuple(
            r[0]
            for r in self._db.execute(
                "SELECT name FROM labels WHERE pr = ? ORDER BY name", (row["number"],)
            )
        )
        return PullRequest(
            number=row["number"],
            title=row["title"],
            body=row["body"],
            head=row["head"],
            base=row["base"],
            head_sha=head_sha,
            state=row["state"],
            draft=bool(row["draft"]),
            labels=labels,
            author=row["author"],
            url=self._url("pull", row["number"]),
            merge_sha=row["merge_sha"],
            merged_by=row["merged_by"],
            merged_at=parse_time(row["merged_at"]) if row["merged_at"] else None,
        )

    # ---------------------------------------------------------- pull requests

    def list_prs(self, state: Literal["open", "all"] = "open") -> list[PullRequest]:
        with self.stats.op("list_prs"):
            sql = "SELECT * FROM prs" + (" WHERE state = 'open'" if state == "open" else "")
            rows = self._db.execute(sql + " ORDER BY number").fetchall()
            prs = [self._pr(r) for r in rows]
            return [p for p in prs if p.marker is not None]

    def get_pr(self, number: int) -> PullRequest:
        with self.stats.op("get_pr"):
            return self._pr(self._row(number))

    def open_pr(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        *,
        draft: bool = False,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        with self.stats.op("open_pr", write=True):
            head_sha = self._branch_sha(head)
            if head_sha is None:
                raise NotFoundError(f"cannot open PR: branch {head!r} is not on {self.slug}")
            if self._branch_sha(base) is None:
                raise NotFoundError(f"cannot open PR: base branch {base!r} is not on {self.slug}")
            now = timestamp()
            with self._tx() as db:
                existing = db.execute(
                    "SELECT number FROM prs WHERE head = ? AND state = 'open'", (head,)
                ).fetchone()
                if existing is not None:
                    number = int(existing[0])
                else:
                    cur = db.execute(
                        "INSERT INTO prs(title, body, head, base, head_sha, state, draft, author,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                        (title, body, head, base, head_sha, int(draft), self.actor, now, now),
                    )
                    number = int(cur.lastrowid or 0)
                    db.executemany(
                        "INSERT OR IGNORE INTO labels(pr, name) VALUES (?, ?)",
                        [(number, name) for name in labels],
                    )
            return self._pr(self._row(number))

    def update_pr(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        with self.stats.op("update_pr", write=True), self._tx() as db:
            row = self._row(number)
            db.execute(
                "UPDATE prs SET title = ?, body = ?, updated_at = ? WHERE number = ?",
                (
                    title if title is not None else row["title"],
                    body if body is not None else row["body"],
                    timestamp(),
                    number,
                ),
            )
        return self._pr(self._row(number))

    def close_pr(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self.comment(number, comment)
        with self.stats.op("close_pr", write=True), self._tx() as db:
            row = self._row(number)
            if row["state"] == "merged":
                raise ConflictError(f"PR #{number} is already merged; it cannot be closed")
            db.execute(
                "UPDATE prs SET state = 'closed', updated_at = ? WHERE number = ?",
                (timestamp(), number),
            )
        return self._pr(self._row(number))

    def set_labels(self, number: int, labels: Sequence[str]) -> None:
        with self.stats.op("set_labels", write=True), self._tx() as db:
            self._row(number)
            db.execute("DELETE FROM labels WHERE pr = ?", (number,))
            db.executemany(
                "INSERT OR IGNORE INTO labels(pr, name) VALUES (?, ?)",
                [(number, n) for n in labels],
            )

    # ---------------------------------------------------------- comments and reviews

    def comment(self, number: int, body: str, *, user: str | None = None) -> Comment:
        """Comment as this client's user, or as `user` (the local CI, a test's person)."""
        with self.stats.op("comment", write=True), self._tx() as db:
            self._row(number)
            now = timestamp()
            cur = db.execute(
                "INSERT INTO comments(pr, user, body, created_at) VALUES (?, ?, ?, ?)",
                (number, user or self.actor, body, now),
            )
            cid = int(cur.lastrowid or 0)
        return Comment(
            cid,
            number,
            user or self.actor,
            body,
            parse_time(now),
            self._url("pull", number) + f"#comment-{cid}",
        )

    def comments_since(self, since: dt.datetime) -> list[Comment]:
        with self.stats.op("comments_since"):
            stamp = since.astimezone(dt.UTC).isoformat(timespec="microseconds")
            return self._comments("created_at >= ?", (stamp,))

    def pr_comments(self, number: int) -> list[Comment]:
        with self.stats.op("pr_comments"):
            return self._comments("pr = ?", (number,))

    def _comments(self, where: str, args: tuple[object, ...]) -> list[Comment]:
        rows = self._db.execute(
            f"SELECT * FROM comments WHERE {where} ORDER BY created_at, id", args
        ).fetchall()
        return [
            Comment(
                r["id"],
                r["pr"],
                r["user"],
                r["body"],
                parse_time(r["created_at"]),
                self._url("pull", r["pr"]) + f"#comment-{r['id']}",
            )
            for r in rows
        ]

    def review(self, number: int, user: str, state: ReviewState, body: str = "") -> Review:
        """Record a review on the PR's current head (the local forge's `stablectl review`)."""
        with self.stats.op("review", write=True):
            pr = self._pr(self._row(number))
            if pr.state != "open":
                raise ConflictError(f"PR #{number} is {pr.state}; it cannot be reviewed")
            now = timestamp()
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO reviews(pr, user, state, commit_sha, body, submitted_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (number, user, state, pr.head_sha, body, now),
                )
            return Review(int(cur.lastrowid or 0), user, state, pr.head_sha, parse_time(now))

    def reviews(self, number: int) -> list[Review]:
        with self.stats.op("reviews"):
            self._row(number)
            rows = self._db.execute(
                "SELECT * FROM reviews WHERE pr = ? ORDER BY id", (number,)
            ).fetchall()
            return [
                Review(
                    r["id"], r["user"], r["state"], r["commit_sha"], parse_time(r["submitted_at"])
                )
                for r in rows
            ]

    def pr_commits(self, number: int) -> list[tuple[str, str]]:
        with self.stats.op("pr_commits"):
            row = self._row(number)
            repo = self._repo()
            if row["commits"]:  # recorded when it merged
                shas = json.loads(row["commits"])
            else:
                shas = self._own_commits(repo, row["head_sha"], row["base"])
            return [(sha, repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit).message) for sha in shas]

    def _own_commits(self, repo: pygit2.Repository, head: str, base: str) -> list[str]:
        tip = self._branch_sha(base)
        if tip is None:
            return []
        mb = repo.merge_base(pygit2.Oid(hex=head), pygit2.Oid(hex=tip))
        return [str(c.id) for c in commits_between(repo, str(mb), head)] if mb else []

    def approved_prs(self, base: str) -> set[int]:
        with self.stats.op("approved_prs"):
            rows = self._db.execute(
                "SELECT DISTINCT p.number FROM prs p JOIN reviews r ON r.pr = p.number"
                " WHERE p.state = 'open' AND p.base = ? AND r.state = 'APPROVED'",
                (base,),
            ).fetchall()
            return {int(r[0]) for r in rows}

    # ---------------------------------------------------------- checks

    def checks(self, sha: str) -> list[CheckState]:
        with self.stats.op("checks"):
            rows = self._db.execute(
                "SELECT * FROM checks WHERE sha = ? ORDER BY name, creator", (sha,)
            ).fetchall()
            return [
                CheckState(
                    r["name"], r["status"], r["conclusion"], r["url"], r["kind"], r["creator"]
                )
                for r in rows
            ]

    def set_status(
        self, sha: str, name: str, state: StatusState, url: str = "", description: str = ""
    ) -> None:
        c = status_to_check(name, state, url)
        self.record_check(c.name, sha, c.status, c.conclusion, c.url, kind="status")

    def record_check(
        self,
        name: str,
        sha: str,
        status: str,
        conclusion: str | None,
        url: str,
        *,
        kind: str = "check_run",
        creator: str | None = None,
    ) -> None:
        """Record a check result as `creator` (default: this client's user)."""
        with self.stats.op("set_check", write=True), self._tx() as db:
            db.execute(
                "INSERT INTO checks(sha, name, creator, kind, status, conclusion, url,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(sha, name, creator) DO UPDATE SET"
                " kind = excluded.kind, status = excluded.status,"
                " conclusion = excluded.conclusion, url = excluded.url,"
                " updated_at = excluded.updated_at",
                (sha, name, creator or self.actor, kind, status, conclusion, url, timestamp()),
            )

    # ---------------------------------------------------------- merge

    def merge(self, number: int, expected_head: str, method: MergeMethod) -> str:
        with self.stats.op("merge", write=True):
            pr = self._pr(self._row(number))
            if pr.state == "merged":
                raise ConflictError(f"PR #{number} is already merged (as {pr.merge_sha})")
            if pr.state != "open":
                raise ConflictError(f"PR #{number} is closed; reopen it before merging")
            if pr.head_sha != expected_head:
                raise HeadMovedError(
                    f"PR #{number} head is {pr.head_sha[:12]}, not {expected_head[:12]} as "
                    "expected (pushed to since it was approved?); not merging"
                )
            base_sha = self._branch_sha(pr.base)
            if base_sha is None:
                raise NotFoundError(f"base branch {pr.base!r} of PR #{number} is gone")
            repo = self._repo()
            own = json.dumps(self._own_commits(repo, pr.head_sha, pr.base))
            head_oid = pygit2.Oid(hex=pr.head_sha)
            is_ff = repo.descendant_of(head_oid, pygit2.Oid(hex=base_sha)) or (
                str(head_oid) == base_sha
            )
            if is_ff:
                new = pr.head_sha
            elif method == "fast-forward":
                raise ConflictError(
                    f"PR #{number} cannot be fast-forwarded: {pr.base} moved to {base_sha[:12]} "
                    "since the backport was made (refresh it, or use merge_method: rebase)"
                )
            else:
                mb = repo.merge_base(head_oid, pygit2.Oid(hex=base_sha))
                commits = commits_between(repo, str(mb), pr.head_sha)
                sig = pygit2.Signature(self.actor, f"{self.actor}@localhost")
                try:
                    new = rebase(repo, commits, base_sha, sig)
                except RebaseConflict as e:
                    raise ConflictError(f"PR #{number} is not mergeable: {e}") from None
            self._cas_ref(f"refs/heads/{pr.base}", new, base_sha)
            now = timestamp()
            with self._tx() as db:
                db.execute(
                    "UPDATE prs SET state = 'merged', merge_sha = ?, head_sha = ?,"
                    " merged_by = ?, merged_at = ?, commits = ?, updated_at = ? WHERE number = ?",
                    (new, pr.head_sha, self.actor, now, own, now, number),
                )
            return new

    def _cas_ref(self, ref: str, new: str, old: str) -> None:
        """Move `ref` from `old` to `new` atomically (git's lockfile), or fail if it moved."""
        args = ["update-ref", "-m", "stablectl merge", ref, new, old]
        r = git(args, git_dir=self.fork_git, check=False)
        if r.returncode != 0:
            why = r.stderr.decode("utf-8", "replace").strip()
            raise ConflictError(f"{ref} moved while merging ({why}); run again")

    # ---------------------------------------------------------- upstream's forge

    def upstream_pr_labels(self, sha: str) -> list[str]:
        return self.upstream.pr_labels(sha)

    def labeled_prs(self, label: str) -> set[int]:
        return self.upstream.labeled_prs(label)

    def upstream_issues(self, terms: str) -> list[UpstreamIssue]:
        return self.upstream.issues(terms)

    def ensure_labels(self, labels: Mapping[str, tuple[str, str]]) -> list[str]:
        """Labels need no creation here: any name can be set on a PR."""
        return []

    def dispatch_workflow(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> None:
        """No workflows here: `stablectl ci run` tests every PR head without a result."""
        return None

    def request_tests(self, number: int, sha: str, how: CIRequest, *, again: bool) -> None:
        """A new head needs nothing: `stablectl ci run` tests every head without a result. A
        retest queues the head again."""
        if again:  # the local CI's own queue: its result on this head is started over
            self.record_check(CHECK_NAME, sha, "queued", None, "", creator=self.ci_identity)

    def web_url(self) -> str | None:
        return None
