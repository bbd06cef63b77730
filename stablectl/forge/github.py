"""GitHub (and GitHub Enterprise) behind the `Forge` protocol, with github3.py.

Transport concerns (retries, rate limits, ETags, counting) live in `http.StableSession`; this
module maps operations onto REST calls and GitHub's answers onto stablectl's types and errors.
The endpoints used and what each operation costs are listed in docs/forge.md.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, cast

import github3
import github3.exceptions as gh_exc
from github3.pulls import PullRequest as GhPullRequest
from github3.pulls import ShortPullRequest as GhShortPullRequest
from github3.repos.release import Release as GhRelease
from github3.repos.repo import Repository as GhRepository

from stablectl.errors import register_secret
from stablectl.forge.base import (
    Asset,
    AuthError,
    CheckState,
    CIRequest,
    Comment,
    ConflictError,
    ForgeError,
    ForgeStats,
    HeadMovedError,
    MergeMethod,
    NotFoundError,
    PullRequest,
    Release,
    Review,
    StatusState,
    UpstreamIssue,
    parse_time,
)
from stablectl.forge.github_rest import (
    call_json,
    checks_of,
    comment_of,
    message,
    operation,
    pages,
    pull_request_of,
    release_of,
)
from stablectl.forge.github_upstream import GitHubUpstream
from stablectl.forge.http import EtagCache, StableSession

DOTCOM = "https://api.github.com"


def _split(slug: str, what: str) -> tuple[str, str]:
    owner, _, name = slug.partition("/")
    if not owner or not name or "/" in name:
        raise ForgeError(f"{what} forge slug {slug!r} is not 'owner/name'")
    return owner, name


class GitHubForge:
    kind = "github"

    def __init__(
        self,
        *,
        api_url: str,
        fork: str,
        upstream: str | None,
        token: str | None,
        token_env: str = "GITHUB_TOKEN",
        max_rate_limit_wait: float = 900,
        state_dir: Path | None = None,
        attempts: int = 6,
        backoff: tuple[float, float] = (1.0, 30.0),
        sleep: Callable[[float], None] = time.sleep,
        read_only: bool = False,
    ) -> None:
        # A reader (verify) needs no token: GitHub's API serves a public fork's PRs, reviews and
        # checks anonymously (at a lower rate limit).
        if not token and not read_only:
            raise AuthError(
                f"no GitHub token: set ${token_env} (a token with contents, pull-requests and "
                "issues write access to the fork)"
            )
        if token:
            register_secret(token)
        self.api_url = api_url.rstrip("/")
        self.fork_slug, self.upstream_slug = fork, upstream
        self._owner, self._name = _split(fork, "fork")
        self.stats = ForgeStats()
        etags = EtagCache(
            state_dir / "github-etags.sqlite" if state_dir else None, f"{self.api_url}\0{token}"
        )
        self.session = StableSession(
            token=token,
            stats=self.stats,
            max_rate_limit_wait=max_rate_limit_wait,
            attempts=attempts,
            backoff=backoff,
            sleep=sleep,
            etags=etags,
        )
        self.session.base_url = self.api_url
        self.gh = github3.GitHub(session=self.session)
        self._repo: GhRepository | None = None
        self._gh_releases: dict[int, GhRelease] = {}
        self.upstream = GitHubUpstream(self.session, self.stats, self.api_url, upstream)

    # ---------------------------------------------------------- plumbing

    @contextmanager
    def _op(self, name: str, what: str, *, write: bool = False) -> Iterator[None]:
        """Count the operation and turn github3's exceptions into clear ForgeErrors."""
        with operation(self.stats, name, what, write=write):
            yield

    @property
    def repo(self) -> GhRepository:
        if self._repo is None:
            with self._op("get_repo", f"fork repository {self.fork_slug}"):
                self._repo = cast(GhRepository, self.gh.repository(self._owner, self._name))
        return self._repo

    def _url(self, *parts: object, slug: str | None = None) -> str:
        return "/".join([self.api_url, "repos", slug or self.fork_slug, *map(str, parts)])

    # ---------------------------------------------------------- pull requests

    def list_prs(self, state: Literal["open", "all"] = "open") -> list[PullRequest]:
        with self._op("list_prs", f"listing PRs of {self.fork_slug}"):
            prs = [
                pull_request_of(GhShortPullRequest(item, self.session))
                for item in pages(
                    self.session,
                    self._url("pulls"),
                    {"state": state, "sort": "created", "direction": "asc"},
                )
            ]
            return [p for p in prs if p.marker is not None]

    def get_pr(self, number: int) -> PullRequest:
        with self._op("get_pr", f"PR #{number} of {self.fork_slug}"):
            return pull_request_of(
                GhPullRequest(
                    call_json(self.session, "GET", self._url("pulls", number)), self.session
                )
            )

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
        what = f"opening a PR {head} → {base} on {self.fork_slug}"
        with self._op("open_pr", what, write=True):
            data = {"title": title, "body": body, "head": head, "base": base, "draft": draft}
            try:
                raw = call_json(self.session, "POST", self._url("pulls"), data=data, expect=201)
            except gh_exc.UnprocessableEntity as e:
                bad = {x.get("field") for x in e.errors or [] if isinstance(x, dict)}
                if bad & {"head", "base"}:
                    missing = head if "head" in bad else base
                    raise NotFoundError(
                        f"{what}: branch {missing!r} is not on {self.fork_slug} (422 {message(e)})",
                        status=422,
                    ) from None
                if "already exists" not in message(e):
                    raise
                found = list(
                    pages(
                        self.session,
                        self._url("pulls"),
                        {"state": "open", "head": f"{self._owner}:{head}"},
                    )
                )
                if not found:
                    raise
                raw = call_json(self.session, "GET", self._url("pulls", found[0]["number"]))
                return pull_request_of(GhPullRequest(raw, self.session))
            pr = pull_request_of(GhPullRequest(raw, self.session))
        if labels:
            self.set_labels(pr.number, labels)
            pr = PullRequest(**{**pr.__dict__, "labels": tuple(sorted(set(labels)))})
        return pr

    def update_pr(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        with self._op("update_pr", f"updating PR #{number} of {self.fork_slug}", write=True):
            data = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
            raw = call_json(self.session, "PATCH", self._url("pulls", number), data=data)
            return pull_request_of(GhPullRequest(raw, self.session))

    def close_pr(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self.comment(number, comment)
        with self._op("close_pr", f"closing PR #{number} of {self.fork_slug}", write=True):
            raw = call_json(
                self.session, "PATCH", self._url("pulls", number), data={"state": "closed"}
            )
            return pull_request_of(GhPullRequest(raw, self.session))

    def set_labels(self, number: int, labels: Sequence[str]) -> None:
        with self._op("set_labels", f"labels of #{number} of {self.fork_slug}", write=True):
            if labels:
                call_json(
                    self.session,
                    "PUT",
                    self._url("issues", number, "labels"),
                    data={"labels": sorted(set(labels))},
                )
            else:  # GitHub's PUT wants at least one label; removing all is a DELETE
                call_json(self.session, "DELETE", self._url("issues", number, "labels"), expect=204)

    # ---------------------------------------------------------- comments and reviews

    def comment(self, number: int, body: str) -> Comment:
        with self._op("comment", f"commenting on #{number} of {self.fork_slug}", write=True):
            return comment_of(
                call_json(
                    self.session,
                    "POST",
                    self._url("issues", number, "comments"),
                    data={"body": body},
                    expect=201,
                )
            )

    def comments_since(self, since: dt.datetime) -> list[Comment]:
        stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._op("comments_since", f"comments of {self.fork_slug} since {stamp}"):
            params = {"since": stamp, "sort": "created", "direction": "asc"}
            out = [
                comment_of(c) for c in pages(self.session, self._url("issues", "comments"), params)
            ]
            # `since` filters on update time; keep what was created in the window.
            return [c for c in out if c.created_at >= since]

    def pr_comments(self, number: int) -> list[Comment]:
        with self._op("pr_comments", f"comments of #{number} of {self.fork_slug}"):
            return [
                comment_of(c) for c in pages(self.session, self._url("issues", number, "comments"))
            ]

    def reviews(self, number: int) -> list[Review]:
        with self._op("reviews", f"reviews of PR #{number} of {self.fork_slug}"):
            return [
                Review(
                    int(r["id"]),
                    (r.get("user") or {}).get("login", ""),
                    r["state"],
                    r.get("commit_id") or "",
                    parse_time(r.get("submitted_at")),
                )
                for r in pages(self.session, self._url("pulls", number, "reviews"))
            ]

    def pr_commits(self, number: int) -> list[tuple[str, str]]:
        with self._op("pr_commits", f"commits of PR #{number} of {self.fork_slug}"):
            return [
                (str(c["sha"]), str((c.get("commit") or {}).get("message") or ""))
                for c in pages(self.session, self._url("pulls", number, "commits"))
            ]

    def approved_prs(self, base: str) -> set[int]:
        query = f"repo:{self.fork_slug} is:pr is:open review:approved base:{base}"
        with self._op("approved_prs", f"approved PRs into {base} on {self.fork_slug}"):
            items = pages(
                self.session, f"{self.api_url}/search/issues", {"q": query}, list_key="items"
            )
            return {int(i["number"]) for i in items}

    # ---------------------------------------------------------- checks

    def checks(self, sha: str) -> list[CheckState]:
        with self._op("checks", f"checks of {sha[:12]} on {self.fork_slug}"):
            # The statuses list names each status's creator (the combined status does not).
            statuses = pages(self.session, self._url("commits", sha, "statuses"))
            runs = pages(
                self.session, self._url("commits", sha, "check-runs"), list_key="check_runs"
            )
            return checks_of(statuses, runs)

    def set_status(
        self, sha: str, name: str, state: StatusState, url: str = "", description: str = ""
    ) -> None:
        with self._op("set_status", f"status {name} of {sha[:12]}", write=True):
            data = {"state": state, "context": name, "description": description[:140]}
            if url:
                data["target_url"] = url
            call_json(self.session, "POST", self._url("statuses", sha), data=data, expect=201)

    # ---------------------------------------------------------- merge

    def merge(self, number: int, expected_head: str, method: MergeMethod) -> str:
        pr = self.get_pr(number)
        what = f"merging PR #{number} of {self.fork_slug}"
        if pr.state == "merged":
            raise ConflictError(f"{what}: it is already merged (as {pr.merge_sha})")
        if pr.state != "open":
            raise ConflictError(f"{what}: it is closed; reopen it before merging")
        if pr.head_sha != expected_head:
            raise HeadMovedError(
                f"{what}: head is {pr.head_sha[:12]}, not {expected_head[:12]} as expected "
                "(pushed to since it was approved?); not merging"
            )
        with self._op("merge", what, write=True):
            if method == "fast-forward":
                try:
                    call_json(
                        self.session,
                        "PATCH",
                        self._url("git", "refs", "heads", pr.base),
                        data={"sha": expected_head, "force": False},
                    )
                except gh_exc.UnprocessableEntity as e:
                    raise ConflictError(
                        f"{what}: {pr.base} cannot be fast-forwarded to {expected_head[:12]} "
                        f"({message(e)}); refresh the backport or use merge_method: rebase",
                        status=422,
                    ) from None
                return expected_head
            try:
                raw = call_json(
                    self.session,
                    "PUT",
                    self._url("pulls", number, "merge"),
                    data={"sha": expected_head, "merge_method": "rebase"},
                )
            except gh_exc.Conflict as e:
                raise HeadMovedError(f"{what}: {message(e)} (409)", status=409) from None
            except gh_exc.MethodNotAllowed as e:
                raise ConflictError(f"{what}: {message(e)} (405)", status=405) from None
            return str(raw["sha"])

    # ---------------------------------------------------------- releases

    def _release(self, r: GhRelease) -> Release:
        self._gh_releases[int(r.id)] = r
        return release_of(r)

    def get_release(self, tag: str) -> Release | None:
        with self._op("get_release", f"release {tag} of {self.fork_slug}"):
            try:
                raw = call_json(self.session, "GET", self._url("releases", "tags", tag))
            except gh_exc.NotFoundError:
                return None
            return self._release(GhRelease(raw, self.session))

    def create_release(
        self, tag: str, name: str, body: str, *, draft: bool = False, prerelease: bool = False
    ) -> Release:
        existing = self.get_release(tag)
        if existing is not None:
            return existing
        with self._op("create_release", f"creating release {tag} on {self.fork_slug}", write=True):
            data = {
                "tag_name": tag,
                "name": name,
                "body": body,
                "draft": draft,
                "prerelease": prerelease,
            }
            try:
                raw = call_json(self.session, "POST", self._url("releases"), data=data, expect=201)
            except gh_exc.UnprocessableEntity as e:
                if "already_exists" not in message(e):
                    raise
                found = self.get_release(tag)  # created by a concurrent or retried run
                if found is None:
                    raise
                return found
            return self._release(GhRelease(raw, self.session))

    def upload_asset(self, release: Release, name: str, data: bytes, content_type: str) -> Asset:
        for a in release.assets:
            if a.name == name:
                if a.size != len(data):
                    raise ConflictError(
                        f"release {release.tag} already has an asset {name!r} of another size"
                    )
                return a
        what = f"uploading {name} to release {release.tag} of {self.fork_slug}"
        with self._op("upload_asset", what, write=True):
            gh_release = self._gh_releases.get(release.id)
            if gh_release is None:
                raw = call_json(self.session, "GET", self._url("releases", release.id))
                gh_release = GhRelease(raw, self.session)
            asset = gh_release.upload_asset(content_type=content_type, name=name, asset=data)
            if asset is None:
                raise ForgeError(f"{what}: GitHub returned no asset")
            return Asset(asset.name, int(asset.size), asset.browser_download_url)

    # ---------------------------------------------------------- upstream's forge

    def upstream_pr_labels(self, sha: str) -> list[str]:
        return self.upstream.pr_labels(sha)

    def labeled_prs(self, label: str) -> set[int]:
        return self.upstream.labeled_prs(label)

    def upstream_issues(self, terms: str) -> list[UpstreamIssue]:
        return self.upstream.issues(terms)

    def ensure_labels(self, labels: Mapping[str, tuple[str, str]]) -> list[str]:
        with self._op("ensure_labels", f"labels of {self.fork_slug}"):
            have = {lb["name"].lower() for lb in pages(self.session, self._url("labels"))}
        created = []
        for name, (color, description) in sorted(labels.items()):
            if name.lower() in have:
                continue
            with self._op(
                "ensure_labels", f"creating label {name!r} on {self.fork_slug}", write=True
            ):
                try:
                    call_json(
                        self.session,
                        "POST",
                        self._url("labels"),
                        expect=201,
                        data={
                            "name": name,
                            "color": color.lstrip("#"),
                            "description": description[:100],
                        },
                    )
                except gh_exc.UnprocessableEntity as e:
                    if "already_exists" not in message(e):
                        raise
                    continue
            created.append(name)
        return created

    def dispatch_workflow(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> None:
        what = f"dispatching {workflow} on {ref} of {self.fork_slug}"
        with self._op("dispatch_workflow", what, write=True):
            call_json(
                self.session,
                "POST",
                self._url("actions", "workflows", workflow, "dispatches"),
                data={"ref": ref, "inputs": dict(inputs)},
                expect=204,
            )

    def request_tests(self, number: int, sha: str, how: CIRequest, *, again: bool) -> None:
        """Dispatch mode: PRs opened with the workflow's GITHUB_TOKEN start no `pull_request`
        runs, so stable-tests is dispatched for the head, which is marked pending. App mode:
        a push starts the runs; a retest marks the head pending."""
        if how.trigger == "dispatch":
            try:
                self.dispatch_workflow(how.workflow, how.ref, {"sha": sha, "pr": str(number)})
            except ForgeError as e:
                raise ForgeError(
                    f"#{number}: could not start {how.workflow} on {how.ref} ({e}); "
                    "is it installed? run `stablectl init`",
                    status=e.status,
                ) from e
            self.set_status(sha, how.status_name, "pending", "", "dispatched by stablectl")
        elif again:
            self.set_status(sha, how.status_name, "pending", "", "tests requested again")

    def web_url(self) -> str | None:
        """github.com for the public API; a GitHub Enterprise server's own host."""
        parsed = urllib.parse.urlsplit(self.api_url)
        if parsed.path.rstrip("/").endswith("/api/v3"):
            return f"{parsed.scheme}://{parsed.netloc}/{self.fork_slug}"
        return f"https://github.com/{self.fork_slug}"

    def close(self) -> None:
        if self.session.etags is not None:
            self.session.etags.close()
        self.session.close()
