"""A GitHub-compatible REST server on 127.0.0.1 for the test suite.

It serves the endpoints stablectl's GitHub forge uses, with GitHub's semantics: token auth
(401 on a bad token, 403 on a missing permission), Link-header pagination, ETags and 304s that
cost no quota, rate-limit headers on every answer, 404/405/409/422 bodies shaped like GitHub's,
refs kept in real bare repositories (a PR's head follows its branch; a fast-forward of the base
marks PRs merged). Every answer is complete (generated from GitHub's OpenAPI description, then
filled with real data) and validated against that description before it is sent; a mismatch
is recorded in `schema_errors`, which the fixture turns into a test failure.

Fault knobs: `fail(n, status)` answers n requests with a 5xx, `drop(n)` closes n connections
without an answer, `rate_limit(seconds, kind)` opens a primary/secondary/429 limit window,
`off_schema(n)` removes a required field from n answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pygit2

from tests.ghserver.openapi import Spec

DOCS = "https://docs.github.com/rest"
WEB = "https://github.invalid"


class HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.message, self.errors, self.headers = status, message, errors, headers
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.message,
            "documentation_url": DOCS,
            "status": str(self.status),
        }
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PR:
    number: int
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    base_sha: str
    user: str
    draft: bool
    state: str = "open"
    merged_at: str | None = None
    merge_sha: str | None = None
    merged_by: str | None = None
    commits: list[str] | None = None  # the PR's own commits when it merged
    closed_at: str | None = None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    labels: list[str] = field(default_factory=list)


@dataclass
class RepoState:
    slug: str
    id: int
    git: pygit2.Repository
    prs: dict[int, PR] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    releases: dict[int, dict[str, Any]] = field(default_factory=dict)
    assets: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    # issues (not PRs): number -> {"title", "labels", "state", "body"}
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    writers: set[str] = field(default_factory=set)

    def branch_sha(self, name: str) -> str | None:
        ref = self.git.references.get(f"refs/heads/{name}")
        return str(ref.resolve().target) if ref is not None else None


@dataclass
class Fault:
    kind: str  # fail | drop | off_schema
    count: int
    status: int = 502
    path: re.Pattern[str] | None = None


class FakeGitHub:
    def __init__(self, spec: Spec, *, prefix: str = "/api/v3") -> None:
        self.spec = spec
        self.prefix = prefix
        self.lock = threading.RLock()
        self.repos: dict[str, RepoState] = {}
        self.tokens: dict[str, str] = {}
        self.ids = itertools.count(1000)
        self.faults: list[Fault] = []
        self.limit_until = 0.0
        self.limit_kind = "primary"
        self.quota = 5000
        self.reset_at = int(time.time()) + 3600
        self.log: list[tuple[str, str, int]] = []
        self.schema_errors: list[str] = []
        self.request_errors: list[str] = []
        self.received_auth: list[str] = []
        self.dispatches: list[dict[str, Any]] = []
        self.label_meta: dict[tuple[str, str], tuple[str, str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self.base = ""

    # ---------------------------------------------------------- setup

    def add_token(self, token: str, login: str) -> None:
        self.tokens[token] = login

    def add_repo(self, slug: str, git_path: Path, *, writers: set[str] | None = None) -> RepoState:
        st = RepoState(
            slug, next(self.ids), pygit2.Repository(str(git_path)), writers=set(writers or ())
        )
        self.repos[slug.lower()] = st
        return st

    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.origin = f"http://{host}:{port}"
        self.base = self.origin + self.prefix
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---------------------------------------------------------- fault knobs

    def fail(self, n: int, status: int = 502, path: str | None = None) -> None:
        self.faults.append(Fault("fail", n, status, re.compile(path) if path else None))

    def drop(self, n: int, path: str | None = None) -> None:
        self.faults.append(Fault("drop", n, 0, re.compile(path) if path else None))

    def off_schema(self, n: int = 1, path: str | None = None) -> None:
        self.faults.append(Fault("off_schema", n, 0, re.compile(path) if path else None))

    def rate_limit(self, seconds: float, kind: str = "primary") -> None:
        """Answer every request with a rate-limit error for `seconds`."""
        self.limit_until = time.time() + seconds
        self.limit_kind = kind
        self.reset_at = int(self.limit_until + 0.999)

    def take_fault(self, kind: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.kind == kind and f.count > 0 and (f.path is None or f.path.search(path)):
                    f.count -= 1
                    return f
        return None

    # ---------------------------------------------------------- objects

    def synth(
        self,
        path: str,
        method: str,
        status: int,
        overlay: dict[str, Any],
        item_key: str | None = None,
        list_item: bool = False,
    ) -> dict[str, Any]:
        if list_item or item_key:
            schema = self.spec.item_schema(path, method, status, item_key)
        else:
            schema = self.spec.response_schema(path, method, status)
        obj = self.spec.synth(schema, self.base)
        _deep_update(obj, overlay)
        return obj

    def user(self, login: str) -> dict[str, Any]:
        uid = int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
        api = f"{self.base}/users/{login}"
        obj = self.spec.synth(
            self.spec.resolve({"$ref": "#/components/schemas/simple-user"}), self.base
        )
        obj.update(
            login=login,
            id=uid,
            node_id=f"U_{uid}",
            url=api,
            html_url=f"{WEB}/{login}",
            type="User",
            site_admin=False,
            avatar_url=f"{WEB}/avatars/{login}",
            gravatar_id="",
            name=None,
            email=None,
        )
        for optional in ("starred_at", "user_view_type"):
            obj.pop(optional, None)
        return obj

    def repo_obj(self, st: RepoState) -> dict[str, Any]:
        owner, name = st.slug.split("/")
        api = f"{self.base}/repos/{st.slug}"
        ov: dict[str, Any] = {
            "id": st.id,
            "node_id": f"R_{st.id}",
            "name": name,
            "full_name": st.slug,
            "owner": self.user(owner),
            "private": False,
            "html_url": f"{WEB}/{st.slug}",
            "url": api,
            "default_branch": "main",
            "fork": False,
            "archive_url": api + "/{archive_format}{/ref}",
            "pulls_url": api + "/pulls{/number}",
            "issues_url": api + "/issues{/number}",
            "releases_url": api + "/releases{/id}",
            "git_refs_url": api + "/git/refs{/sha}",
            "statuses_url": api + "/statuses/{sha}",
            "commits_url": api + "/commits{/sha}",
            "labels_url": api + "/labels{/name}",
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }
        return ov

    def repo_full(self, st: RepoState, path: str) -> dict[str, Any]:
        obj = self.synth(path, "get", 200, self.repo_obj(st))
        for k in ("parent", "source", "template_repository", "organization", "license"):
            if k in obj:
                obj[k] = None
        for k in ("parent", "source", "temp_clone_token"):
            obj.pop(k, None)
        return obj

    def label(self, st: RepoState, name: str) -> dict[str, Any]:
        lid = st.labels.setdefault(name, next(self.ids))
        color, description = self.label_meta.get((st.slug, name), ("ededed", ""))
        return {
            "id": lid,
            "node_id": f"LA_{lid}",
            "url": f"{self.base}/repos/{st.slug}/labels/" + urllib.parse.quote(name),
            "name": name,
            "description": description,
            "color": color,
            "default": False,
        }

    def pr_obj(self, st: RepoState, pr: PR, path: str, *, simple: bool = False) -> dict[str, Any]:
        api = f"{self.base}/repos/{st.slug}"
        repo = self.repo_obj(st)
        head_repo = self.synth(f"/repos/{st.slug}", "get", 200, dict(repo))
        for k in ("parent", "source", "template_repository", "organization"):
            head_repo.pop(k, None)
        head_repo = {k: v for k, v in head_repo.items() if k in self._repo_keys()}
        head_repo.update(repo)
        head_repo["license"] = None
        head_repo.pop("temp_clone_token", None)
        head_repo["owner"] = self.user(st.slug.split("/")[0])
        ov: dict[str, Any] = {
            "id": pr.number + 50000,
            "node_id": f"PR_{pr.number}",
            "number": pr.number,
            "url": f"{api}/pulls/{pr.number}",
            "html_url": f"{WEB}/{st.slug}/pull/{pr.number}",
            "diff_url": f"{WEB}/{st.slug}/pull/{pr.number}.diff",
            "patch_url": f"{WEB}/{st.slug}/pull/{pr.number}.patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "commits_url": f"{api}/pulls/{pr.number}/commits",
            "review_comments_url": f"{api}/pulls/{pr.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{pr.head_sha}",
            "state": "open" if pr.state == "open" else "closed",
            "locked": False,
            "title": pr.title,
            "body": pr.body,
            "draft": pr.draft,
            "user": self.user(pr.user),
            "labels": [self.label(st, n) for n in sorted(pr.labels)],
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "milestone": None,
            "author_association": "OWNER",
            "auto_merge": None,
            "active_lock_reason": None,
            "head": {
                "label": f"{st.slug.split('/')[0]}:{pr.head}",
                "ref": pr.head,
                "sha": pr.head_sha,
                "user": self.user(st.slug.split("/")[0]),
                "repo": head_repo,
            },
            "base": {
                "label": f"{st.slug.split('/')[0]}:{pr.base}",
                "ref": pr.base,
                "sha": pr.base_sha,
                "user": self.user(st.slug.split("/")[0]),
                "repo": head_repo,
            },
            "_links": {
                k: {"href": f"{api}/pulls/{pr.number}"}
                for k in (
                    "self",
                    "html",
                    "issue",
                    "comments",
                    "review_comments",
                    "review_comment",
                    "commits",
                    "statuses",
                )
            },
        }
        if not simple:
            ov.update(
                merged=pr.merged_at is not None,
                mergeable=True,
                rebaseable=True,
                mergeable_state="clean",
                merged_by=self.user(pr.merged_by or "web-flow") if pr.merged_at else None,
                comments=0,
                review_comments=0,
                maintainer_can_modify=False,
                commits=1,
                additions=1,
                deletions=0,
                changed_files=1,
                body_html=pr.body,
                body_text=pr.body,
            )
            return self.synth(path, "get", 200, ov) | {"body": pr.body}
        obj = self.synth(f"/repos/{st.slug}/pulls", "get", 200, ov, list_item=True)
        # The `full+json` media type github3.py asks for adds these to every body.
        obj.update(body_html=pr.body, body_text=pr.body)
        return obj

    _REPO_KEYS: set[str] | None = None

    def _repo_keys(self) -> set[str]:
        if FakeGitHub._REPO_KEYS is None:
            schema = self.spec.resolve({"$ref": "#/components/schemas/repository"})
            FakeGitHub._REPO_KEYS = set(schema.get("properties", {}))
        return FakeGitHub._REPO_KEYS

    def comment_obj(
        self,
        st: RepoState,
        c: dict[str, Any],
        path: str,
        method: str,
        status: int,
        list_item: bool = False,
    ) -> dict[str, Any]:
        api = f"{self.base}/repos/{st.slug}"
        ov = {
            "id": c["id"],
            "node_id": f"IC_{c['id']}",
            "url": f"{api}/issues/comments/{c['id']}",
            "html_url": f"{WEB}/{st.slug}/issues/{c['number']}#issuecomment-{c['id']}",
            "issue_url": f"{api}/issues/{c['number']}",
            "body": c["body"],
            "body_text": c["body"],
            "body_html": c["body"],
            "user": self.user(c["user"]),
            "created_at": c["created_at"],
            "updated_at": c.get("updated_at", c["created_at"]),
            "author_association": "OWNER",
            "performed_via_github_app": None,
            "reactions": None,
        }
        obj = self.synth(path, method, status, ov, list_item=list_item)
        obj.pop("reactions", None)
        obj.pop("pin", None)
        return obj

    def release_obj(
        self, st: RepoState, r: dict[str, Any], path: str, method: str, status: int
    ) -> dict[str, Any]:
        api = f"{self.base}/repos/{st.slug}"
        up = f"{self.origin}/api/uploads/repos/{st.slug}/releases/{r['id']}/assets"
        ov = {
            "id": r["id"],
            "node_id": f"RE_{r['id']}",
            "url": f"{api}/releases/{r['id']}",
            "html_url": f"{WEB}/{st.slug}/releases/tag/{r['tag_name']}",
            "assets_url": f"{api}/releases/{r['id']}/assets",
            "upload_url": up + "{?name,label}",
            "tarball_url": None,
            "zipball_url": None,
            "tag_name": r["tag_name"],
            "target_commitish": r["target_commitish"],
            "name": r["name"],
            "body": r["body"],
            "body_html": r["body"],
            "body_text": r["body"],
            "draft": r["draft"],
            "prerelease": r["prerelease"],
            "immutable": False,
            "created_at": r["created_at"],
            "published_at": None if r["draft"] else r["created_at"],
            "author": self.user(r["author"]),
            "assets": [self.asset_obj(st, a) for a in st.assets.get(r["id"], [])],
            "mentions_count": None,
            "discussion_url": None,
            "reactions": None,
        }
        obj = self.synth(path, method, status, ov)
        for k in ("mentions_count", "discussion_url", "reactions"):
            obj.pop(k, None)
        return obj

    def asset_obj(self, st: RepoState, a: dict[str, Any]) -> dict[str, Any]:
        schema = self.spec.resolve({"$ref": "#/components/schemas/release-asset"})
        obj = self.spec.synth(schema, self.base)
        _deep_update(
            obj,
            {
                "id": a["id"],
                "node_id": f"RA_{a['id']}",
                "name": a["name"],
                "label": None,
                "url": f"{self.base}/repos/{st.slug}/releases/assets/{a['id']}",
                "browser_download_url": f"{WEB}/{st.slug}/releases/download/{a['tag']}/{a['name']}",
                "content_type": a["content_type"],
                "state": "uploaded",
                "size": a["size"],
                "digest": "sha256:" + a["sha256"],
                "download_count": 0,
                "created_at": a["created_at"],
                "updated_at": a["created_at"],
                "uploader": self.user(a["uploader"]),
            },
        )
        return obj

    def workflow_files(self, st: RepoState, ref: str) -> set[str]:
        sha = st.branch_sha(ref)
        if sha is None:
            return set()
        tree = st.git[pygit2.Oid(hex=sha)].peel(pygit2.Commit).tree
        try:
            wf = tree[".github/workflows"]
        except KeyError:
            return set()
        return {e.name for e in st.git[wf.id]}  # type: ignore[attr-defined]

    # ---------------------------------------------------------- merges in git

    def mark_merged_by_ref(self, st: RepoState, branch: str, login: str) -> None:
        """GitHub marks a PR merged when its base moves onto its head (a push or a ref
        update), merged by whoever moved the base."""
        tip = st.branch_sha(branch)
        if tip is None:
            return
        for pr in st.prs.values():
            if pr.state == "open" and pr.base == branch:
                head = st.branch_sha(pr.head) or pr.head_sha
                if head == tip or st.git.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=head)):
                    pr.commits = pr.commits or self.own_commits(st, pr, pr.base_sha)
                    pr.head_sha = head
                    pr.state, pr.merged_at, pr.closed_at = "closed", _now(), _now()
                    pr.merge_sha, pr.merged_by = head, login

    def own_commits(self, st: RepoState, pr: PR, base: str | None = None) -> list[str]:
        """The commits a PR brings: its head's, not its base's, oldest first."""
        tip = base or st.branch_sha(pr.base)
        if tip is None:
            return []
        mb = st.git.merge_base(pygit2.Oid(hex=pr.head_sha), pygit2.Oid(hex=tip))
        walker = st.git.walk(pygit2.Oid(hex=pr.head_sha), pygit2.enums.SortMode.TOPOLOGICAL)
        if mb is not None:
            walker.hide(mb)
        return [str(c.id) for c in reversed(list(walker))]

    def rebase_merge(self, st: RepoState, pr: PR) -> str:
        base_tip = st.branch_sha(pr.base)
        assert base_tip is not None
        repo = st.git
        mb = repo.merge_base(pygit2.Oid(hex=pr.head_sha), pygit2.Oid(hex=base_tip))
        walker = repo.walk(pygit2.Oid(hex=pr.head_sha), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(mb)
        commits = list(reversed(list(walker)))
        tip = repo[pygit2.Oid(hex=base_tip)].peel(pygit2.Commit)
        committer = pygit2.Signature("GitHub", "noreply@github.com")
        for c in commits:
            index = repo.merge_trees(c.parents[0].tree, tip.tree, c.tree)
            if index.conflicts is not None:
                raise HTTPError(405, "Pull Request is not mergeable")
            tree = index.write_tree(repo)
            tip = repo[
                repo.create_commit(None, c.author, committer, c.message, tree, [tip.id])
            ].peel(pygit2.Commit)
        repo.references.create(f"refs/heads/{pr.base}", tip.id, force=True)
        return str(tip.id)


def _deep_update(obj: dict[str, Any], overlay: dict[str, Any]) -> None:
    for k, v in overlay.items():
        if (
            isinstance(v, dict)
            and isinstance(obj.get(k), dict)
            and k not in ("owner", "user", "author", "repo", "uploader", "permissions", "merged_by")
        ):
            _deep_update(obj[k], v)
        else:
            obj[k] = v


# ------------------------------------------------------------------ HTTP handling

Route = tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.server_state
        parsed = urllib.parse.urlsplit(self.path)
        raw_path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = "https://api.github.com"
        if raw_path.startswith("/api/uploads/"):
            path, host = raw_path[len("/api/uploads") :], "https://uploads.github.com"
        elif fake.prefix and raw_path.startswith(fake.prefix + "/"):
            path = raw_path[len(fake.prefix) :]
        else:
            path = raw_path
        if fake.take_fault("drop", path):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        fault = fake.take_fault("fail", path)
        if fault is not None:
            self._send(
                fault.status,
                {"message": "Server Error", "documentation_url": DOCS},
                {},
                method,
                path,
                host,
                query,
                validate=False,
            )
            return
        auth = self.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        fake.received_auth.append(token)
        with fake.lock:
            try:
                if token in fake.tokens:
                    login = fake.tokens[token]
                elif not token and method in ("GET", "HEAD"):
                    login = ""  # an anonymous read, as GitHub serves a public repository
                else:
                    raise HTTPError(401, "Bad credentials")
                limited = self._rate_limited()
                if limited is not None:
                    raise limited
                status, payload, extra = self._dispatch(method, path, query, body, login)
            except HTTPError as e:
                fake.log.append((method, path, e.status))
                self._send(
                    e.status,
                    e.body(),
                    e.headers or {},
                    method,
                    path,
                    host,
                    query,
                    validate=e.status in (404, 422),
                )
                return
            if method == "GET":
                etag = (
                    'W/"'
                    + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
                    + '"'
                )
                extra["ETag"] = etag
                if self.headers.get("If-None-Match") == etag:
                    fake.log.append((method, path, 304))
                    self._send(304, None, extra, method, path, host, query, validate=False)
                    return
            fake.quota = max(0, fake.quota - 1)
            fake.log.append((method, path, status))
            if method != "GET" and fake.spec and status < 300:
                try:
                    ctype = self.headers.get("Content-Type", "application/json")
                    if host.startswith("https://uploads"):
                        ctype = "application/octet-stream"
                        body_for = b""
                    else:
                        body_for = body
                    fake.spec.validate_request(host, method, path, query, body_for, ctype)
                except Exception as e:
                    fake.request_errors.append(f"{method} {path}: {_short(e)}")
            if fake.take_fault("off_schema", path) is not None and isinstance(payload, dict):
                payload = dict(payload)
                for key in ("url", "id", "number", "name", "sha"):
                    if key in payload:
                        del payload[key]
                        break
            self._send(status, payload, extra, method, path, host, query, validate=True)

    def _rate_limited(self) -> HTTPError | None:
        fake = self.server_state
        left = fake.limit_until - time.time()
        if left <= 0:
            return None
        if fake.limit_kind == "secondary":
            return HTTPError(
                403,
                "You have exceeded a secondary rate limit. Please wait a few "
                "minutes before you try again.",
                headers={"Retry-After": str(max(1, int(left + 0.999)))},
            )
        if fake.limit_kind == "429":
            return HTTPError(
                429, "Too many requests", headers={"Retry-After": str(max(1, int(left + 0.999)))}
            )
        fake.quota = 0
        return HTTPError(
            403,
            "API rate limit exceeded for user. (But here's the good news: "
            "Authenticated requests get a higher rate limit.)",
        )

    def _send(
        self,
        status: int,
        payload: Any,
        extra: dict[str, str],
        method: str,
        path: str,
        host: str,
        query: dict[str, str],
        *,
        validate: bool,
    ) -> None:
        fake = self.server_state
        data = b"" if payload is None else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(fake.quota),
            "X-RateLimit-Reset": str(fake.reset_at),
            "X-RateLimit-Used": str(5000 - fake.quota),
            "X-RateLimit-Resource": "core",
            "X-GitHub-Media-Type": "github.v3; param=full; format=json",
            **extra,
        }
        if time.time() >= fake.limit_until and fake.quota == 0:
            fake.quota = 5000
        if validate and status >= 400 and not fake.spec.documents(method, path, status):
            # GitHub answers errors an operation does not list (a 404 on any route); they
            # share the shape of `basic-error`.
            if not (
                isinstance(payload, dict)
                and isinstance(payload.get("message"), str)
                and isinstance(payload.get("documentation_url"), str)
            ):
                fake.schema_errors.append(f"{method} {path} → {status}: not a basic-error body")
            validate = False
        if validate and fake.spec is not None:
            try:
                fake.spec.validate_response(
                    host, method, path, query, status, data, "application/json", headers
                )
            except Exception as e:
                fake.schema_errors.append(f"{method} {path} → {status}: {_short(e)}")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and method != "HEAD":
            self.wfile.write(data)

    # ---------------------------------------------------------- routing

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: bytes, login: str
    ) -> tuple[int, Any, dict[str, str]]:
        from tests.ghserver import routes

        if method == "GET" and path == "/search/issues":
            return routes.search_issues(self.server_state, path, query)
        for m, rx, fn in routes.ROUTES:
            if m == method:
                match = rx.match(path)
                if match:
                    slug = f"{match['owner']}/{match['repo']}"
                    st = self.server_state.repos.get(slug.lower())
                    if st is None:
                        raise HTTPError(404, "Not Found")
                    # On a public repository anyone signed in may comment and review; every
                    # other write needs push access.
                    public = fn in (routes.create_review, routes.create_comment)
                    if method != "GET" and login not in st.writers and not public:
                        raise HTTPError(403, "Resource not accessible by personal access token")
                    data = json.loads(body) if body and not path.endswith("/assets") else None
                    args = {
                        k: v for k, v in match.groupdict().items() if k not in ("owner", "repo")
                    }
                    return fn(
                        self.server_state,
                        st,
                        path,
                        query,
                        data if data is not None else body,
                        login,
                        **args,
                    )
        raise HTTPError(404, "Not Found")


def _short(e: BaseException) -> str:
    """The schema violations of a validation error, each with its JSON path."""
    cause = e.__cause__ or e
    errs = getattr(cause, "schema_errors", None)
    if errs:
        parts = []
        for err in errs:
            leaves = _leaves(err)
            for leaf in leaves[:4]:
                where = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
                parts.append(f"{where}: {leaf.message[:160]}")
        return "; ".join(parts[:12])
    return str(cause)[:600]


def _leaves(err: Any) -> list[Any]:
    ctx = list(getattr(err, "context", None) or [])
    if not ctx:
        return [err]
    out: list[Any] = []
    for c in ctx:
        out += _leaves(c)
    return out
