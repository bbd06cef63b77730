"""Endpoints of the GitHub-compatible test server (one function each, GitHub's semantics)."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from typing import Any

import pygit2

from tests.ghserver.server import PR, FakeGitHub, HTTPError, RepoState, _now

Result = tuple[int, Any, dict[str, str]]
R = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


def _paginate(
    fake: FakeGitHub, path: str, query: dict[str, str], items: list[Any]
) -> tuple[list[Any], dict[str, str]]:
    per_page = min(100, int(query.get("per_page", "30")))
    page = max(1, int(query.get("page", "1")))
    last = max(1, (len(items) + per_page - 1) // per_page)
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []

    def url(p: int) -> str:
        q = dict(query, page=str(p), per_page=str(per_page))
        return f"{fake.base}{path}?{urllib.parse.urlencode(q)}"

    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
    return chunk, ({"Link": ", ".join(links)} if links else {})


def _pr(st: RepoState, number: str) -> PR:
    pr = st.prs.get(int(number))
    if pr is None:
        raise HTTPError(404, "Not Found")
    if pr.state == "open":
        live = st.branch_sha(pr.head)
        if live is not None:
            pr.head_sha = live
    return pr


def _need(data: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HTTPError(400, "Problems parsing JSON")
    for k in keys:
        if k not in data:
            raise HTTPError(422, 'Invalid request.\n\n"' + k + "\" wasn't supplied.")
    return data


# ---------------------------------------------------------------- repository


def get_repo(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    return 200, fake.repo_full(st, path), {}


# ---------------------------------------------------------------- pulls


def list_pulls(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    state = q.get("state", "open")
    prs = [_pr(st, str(n)) for n in sorted(st.prs)]
    if state != "all":
        prs = [p for p in prs if (p.state == "open") == (state == "open")]
    if "head" in q:
        owner, _, branch = q["head"].partition(":")
        prs = [p for p in prs if p.head == branch and owner.lower() == st.slug.split("/")[0]]
    if q.get("sort") and q.get("direction", "desc") == "desc":  # GitHub's default order
        prs.reverse()
    page, headers = _paginate(fake, path, q, prs)
    return 200, [fake.pr_obj(st, p, path, simple=True) for p in page], headers


def create_pull(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    d = _need(data, "head", "base")
    head, base = d["head"].split(":")[-1], d["base"]
    head_sha, base_sha = st.branch_sha(head), st.branch_sha(base)
    errors = []
    if head_sha is None:
        errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
    if base_sha is None:
        errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
    if errors:
        raise HTTPError(422, "Validation Failed", errors)
    assert head_sha and base_sha
    for p in st.prs.values():
        if p.state == "open" and p.head == head:
            raise HTTPError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": "A pull request already exists for "
                        f"{st.slug.split('/')[0]}:{head}.",
                    }
                ],
            )
    if head_sha == base_sha:
        raise HTTPError(
            422,
            "Validation Failed",
            [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            ],
        )
    number = max([0, *st.prs, *(c["number"] for c in st.comments)]) + 1
    pr = PR(
        number,
        d.get("title") or head,
        d.get("body") or "",
        head,
        base,
        head_sha,
        base_sha,
        login,
        bool(d.get("draft", False)),
    )
    st.prs[number] = pr
    return (
        201,
        fake.pr_obj(st, pr, f"/repos/{st.slug}/pulls/{number}"),
        {"Location": f"{fake.base}/repos/{st.slug}/pulls/{number}"},
    )


def get_pull(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    return 200, fake.pr_obj(st, _pr(st, number), path), {}


def update_pull(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    pr = _pr(st, number)
    d = _need(data)
    if "title" in d:
        pr.title = d["title"]
    if "body" in d:
        pr.body = d["body"] or ""
    if d.get("state") == "closed" and pr.state == "open":
        pr.state, pr.closed_at = "closed", _now()
    elif d.get("state") == "open" and pr.state == "closed" and not pr.merged_at:
        pr.state, pr.closed_at = "open", None
    pr.updated_at = _now()
    return 200, fake.pr_obj(st, pr, path), {}


def merge_pull(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    pr = _pr(st, number)
    d = _need(data)
    if pr.merged_at or pr.state != "open":
        raise HTTPError(405, "Pull Request is not mergeable")
    if d.get("sha") and d["sha"] != pr.head_sha:
        raise HTTPError(409, "Head branch was modified. Review and try the merge again.")
    method = d.get("merge_method", "merge")
    if method != "rebase":
        raise HTTPError(405, f"Merge method {method} is not allowed on this repository")
    pr.commits = fake.own_commits(st, pr)
    new = fake.rebase_merge(st, pr)
    pr.state, pr.merged_at, pr.closed_at, pr.merge_sha = "closed", _now(), _now(), new
    pr.merged_by = login
    return 200, {"sha": new, "merged": True, "message": "Pull Request successfully merged"}, {}


def pull_commits(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    pr = _pr(st, number)
    shas = pr.commits if pr.commits is not None else fake.own_commits(st, pr)
    page, headers = _paginate(fake, path, q, shas)
    api = f"{fake.base}/repos/{st.slug}"
    out = []
    for sha in page:
        c = st.git[pygit2.Oid(hex=sha)].peel(pygit2.Commit)
        obj = fake.synth(path, "get", 200, {}, list_item=True)
        obj.update(sha=sha, node_id=f"C_{sha[:8]}", url=f"{api}/commits/{sha}")
        obj["commit"].update(message=c.message, url=f"{api}/git/commits/{sha}")
        for who, sig in (("author", c.author), ("committer", c.committer)):
            obj[who] = fake.user(sig.name.replace(" ", "-") or "ghost")
            obj["commit"][who] = {"name": sig.name, "email": sig.email, "date": _now()}
        obj["parents"] = [{"sha": str(x), "url": f"{api}/commits/{x}"} for x in c.parent_ids]
        out.append(obj)
    return 200, out, headers


def list_reviews(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    _pr(st, number)
    page, headers = _paginate(fake, path, q, st.reviews.get(int(number), []))
    return 200, [_review_obj(fake, st, r, path) for r in page], headers


def create_review(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    pr = _pr(st, number)
    d = _need(data, "event")
    event = d["event"]
    states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
    if event not in states:
        raise HTTPError(422, "Unprocessable Entity", [f"Invalid event {event}"])
    if login == pr.user and event != "COMMENT":
        raise HTTPError(
            422,
            "Unprocessable Entity",
            [
                "Can not approve your own pull request"
                if event == "APPROVE"
                else "Can not request changes on your own pull request"
            ],
        )
    rid = next(fake.ids)
    r = {
        "id": rid,
        "user": login,
        "state": states[event],
        "body": d.get("body") or "",
        "commit_id": d.get("commit_id") or pr.head_sha,
        "submitted_at": _now(),
        "number": pr.number,
    }
    st.reviews.setdefault(pr.number, []).append(r)
    return 200, _review_obj(fake, st, r, path, single=True), {}


def _review_obj(
    fake: FakeGitHub, st: RepoState, r: dict[str, Any], path: str, single: bool = False
) -> dict[str, Any]:
    api = f"{fake.base}/repos/{st.slug}"
    ov = {
        "id": r["id"],
        "node_id": f"PRR_{r['id']}",
        "user": fake.user(r["user"]),
        "body": r["body"],
        "body_html": r["body"],
        "body_text": r["body"],
        "state": r["state"],
        "commit_id": r["commit_id"],
        "submitted_at": r["submitted_at"],
        "html_url": f"{api}/pull/{r['number']}#pullrequestreview-{r['id']}",
        "pull_request_url": f"{api}/pulls/{r['number']}",
        "author_association": "MEMBER",
        "_links": {
            "html": {"href": f"{api}/pull/{r['number']}"},
            "pull_request": {"href": f"{api}/pulls/{r['number']}"},
        },
    }
    if single:
        return fake.synth(path, "post", 200, ov)
    return fake.synth(path, "get", 200, ov, list_item=True)


# ---------------------------------------------------------------- issues: labels, comments


def _label_names(data: Any) -> list[str]:
    """The label names of a set or add request: `{"labels": [...]}` or a bare list."""
    names = data.get("labels", []) if isinstance(data, dict) else data
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HTTPError(422, "Validation Failed", [{"resource": "Label", "code": "invalid"}])
    return names


def set_labels(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    pr = _pr(st, number)
    pr.labels = sorted(set(_label_names(data)))
    return 200, [fake.label(st, n) for n in pr.labels], {}


def add_labels(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    """`POST …/issues/{n}/labels`: adds to the labels there (the report job's `gh api`)."""
    pr = _pr(st, number)
    pr.labels = sorted(set(pr.labels) | set(_label_names(data)))
    return 200, [fake.label(st, n) for n in pr.labels], {}


def run_jobs(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    run_id: str,
) -> Result:
    """`GET …/actions/runs/{id}/jobs`: this server runs no Actions, so no run has jobs it
    knows of (a workflow run under act asks, with act's run id)."""
    return 200, {"total_count": 0, "jobs": []}, {}


def clear_labels(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    _pr(st, number).labels = []
    return 204, None, {}


def create_comment(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    d = _need(data, "body")
    if int(number) not in st.prs:
        raise HTTPError(404, "Not Found")
    c = {
        "id": next(fake.ids),
        "number": int(number),
        "user": login,
        "body": d["body"],
        "created_at": _now(),
    }
    st.comments.append(c)
    return 201, fake.comment_obj(st, c, path, "post", 201), {}


def list_issue_comments(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    number: str,
) -> Result:
    items = [c for c in st.comments if c["number"] == int(number)]
    page, headers = _paginate(fake, path, q, items)
    return 200, [fake.comment_obj(st, c, path, "get", 200, list_item=True) for c in page], headers


def edit_comment(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    comment_id: str,
) -> Result:
    """As GitHub: anyone with write access may edit anyone's comment; its author stays, its
    `updated_at` moves."""
    d = _need(data, "body")
    c = next((x for x in st.comments if x["id"] == int(comment_id)), None)
    if c is None:
        raise HTTPError(404, "Not Found")
    c["body"] = d["body"]
    now = _now()
    if now <= c["created_at"]:  # stamps have whole seconds: an edit is always later
        import datetime as dt

        t = dt.datetime.fromisoformat(c["created_at"].replace("Z", "+00:00"))
        now = (t + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    c["updated_at"] = now
    return 200, fake.comment_obj(st, c, path, "patch", 200), {}


def list_repo_comments(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    since = q.get("since", "")
    items = [c for c in st.comments if c["created_at"] >= since]
    if q.get("direction") == "desc":
        items.reverse()
    page, headers = _paginate(fake, path, q, items)
    return 200, [fake.comment_obj(st, c, path, "get", 200, list_item=True) for c in page], headers


# ---------------------------------------------------------------- statuses and checks


def create_status(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, sha: str
) -> Result:
    d = _need(data, "state")
    if d["state"] not in ("error", "failure", "pending", "success"):
        raise HTTPError(
            422, "Validation Failed", [{"resource": "Status", "field": "state", "code": "custom"}]
        )
    try:
        st.git[pygit2.Oid(hex=sha)]
    except (KeyError, ValueError):
        raise HTTPError(422, f"No commit found for SHA: {sha}") from None
    sid = next(fake.ids)
    s = {
        "id": sid,
        "state": d["state"],
        "context": d.get("context", "default"),
        "description": d.get("description"),
        "target_url": d.get("target_url"),
        "created_at": _now(),
        "creator": login,
    }
    st.statuses.setdefault(sha, []).append(s)
    return 201, _status_obj(fake, st, s, sha, path), {}


def _status_obj(
    fake: FakeGitHub,
    st: RepoState,
    s: dict[str, Any],
    sha: str,
    path: str,
    method: str = "post",
    code: int = 201,
) -> dict[str, Any]:
    api = f"{fake.base}/repos/{st.slug}"
    return fake.synth(
        path,
        method,
        code,
        {
            "id": s["id"],
            "node_id": f"SC_{s['id']}",
            "url": f"{api}/statuses/{sha}",
            "avatar_url": None,
            "state": s["state"],
            "context": s["context"],
            "description": s["description"],
            "target_url": s["target_url"],
            "created_at": s["created_at"],
            "updated_at": s["created_at"],
            "creator": fake.user(s["creator"]),
        },
        list_item=method == "get",
    )


def combined_status(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, ref: str
) -> Result:
    sha = _resolve(st, ref)
    latest: dict[str, dict[str, Any]] = {}
    for s in st.statuses.get(sha, []):
        latest[s["context"]] = s
    statuses = list(latest.values())
    states = {s["state"] for s in statuses}
    state = (
        "failure"
        if states & {"failure", "error"}
        else "pending"
        if "pending" in states or not states
        else "success"
    )
    api = f"{fake.base}/repos/{st.slug}"
    rstat = fake.spec.resolve({"$ref": "#/components/schemas/simple-commit-status"})
    items = []
    for s in statuses:
        obj = fake.spec.synth(rstat, fake.base)
        obj.update(
            id=s["id"],
            node_id=f"SC_{s['id']}",
            url=f"{api}/statuses/{sha}",
            avatar_url=None,
            state=s["state"],
            context=s["context"],
            description=s["description"],
            target_url=s["target_url"],
            created_at=s["created_at"],
            updated_at=s["created_at"],
            required=False,
        )
        items.append(obj)
    repo = fake.synth(f"/repos/{st.slug}", "get", 200, fake.repo_obj(st))
    mini = fake.spec.resolve({"$ref": "#/components/schemas/minimal-repository"})
    repo = {k: v for k, v in repo.items() if k in mini.get("properties", {})}
    repo.update(fake.repo_obj(st))
    repo = {k: v for k, v in repo.items() if k in mini.get("properties", {})}
    repo.pop("temp_clone_token", None)
    return (
        200,
        fake.synth(
            path,
            "get",
            200,
            {
                "state": state,
                "statuses": items,
                "sha": sha,
                "total_count": len(items),
                "repository": repo,
                "commit_url": f"{api}/commits/{sha}",
                "url": f"{api}/commits/{sha}/status",
            },
        ),
        {},
    )


def list_statuses(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, ref: str
) -> Result:
    """Every status of a commit, newest first, with its creator (the combined status has
    none)."""
    sha = _resolve(st, ref)
    items = list(reversed(st.statuses.get(sha, [])))
    page, headers = _paginate(fake, path, q, items)
    return (
        200,
        [_status_obj(fake, st, x, sha, path, "get", 200) for x in page],
        headers,
    )


def create_check_run(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    d = _need(data, "name", "head_sha")
    if not login.endswith("[bot]"):
        # As GitHub: the Checks API writes only for GitHub Apps (Actions is one).
        raise HTTPError(403, "You must authenticate via a GitHub App.")
    cid = next(fake.ids)
    run = {
        "id": cid,
        "name": d["name"],
        "head_sha": d["head_sha"],
        "status": d.get("status", "queued"),
        "conclusion": d.get("conclusion"),
        "details_url": d.get("details_url"),
        "started_at": _now(),
        "app": login[: -len("[bot]")],
    }
    if run["conclusion"] is not None:
        run["status"] = "completed"
    st.check_runs.setdefault(d["head_sha"], []).append(run)
    return 201, _check_obj(fake, st, run, path, "post", 201), {}


def _check_obj(
    fake: FakeGitHub,
    st: RepoState,
    r: dict[str, Any],
    path: str,
    method: str,
    status: int,
    item_key: str | None = None,
) -> dict[str, Any]:
    api = f"{fake.base}/repos/{st.slug}"
    ov = {
        "id": r["id"],
        "node_id": f"CR_{r['id']}",
        "head_sha": r["head_sha"],
        "name": r["name"],
        "status": r["status"],
        "conclusion": r["conclusion"],
        "url": f"{api}/check-runs/{r['id']}",
        "html_url": f"{fake.base}/runs/{r['id']}",
        "details_url": r["details_url"],
        "external_id": None,
        "started_at": r["started_at"],
        "completed_at": r["started_at"] if r["status"] == "completed" else None,
        "output": {
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{api}/check-runs/{r['id']}/annotations",
        },
        "check_suite": None,
        "app": _app_obj(fake, r["app"]) if r.get("app") else None,
        "pull_requests": [],
        "deployment": None,
    }
    obj = fake.synth(path, method, status, ov, item_key=item_key)
    obj.pop("deployment", None)
    return obj


def _app_obj(fake: FakeGitHub, slug: str) -> dict[str, Any]:
    """A GitHub App (an `integration`), as check runs name the app that made them."""
    obj = fake.spec.synth(
        fake.spec.resolve({"$ref": "#/components/schemas/integration"}), fake.base
    )
    aid = int(hashlib.sha256(slug.encode()).hexdigest()[:5], 16)
    obj.update(id=aid, slug=slug, node_id=f"A_{aid}", name=slug, owner=fake.user(slug))
    return dict(obj)


def list_check_runs(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, ref: str
) -> Result:
    sha = _resolve(st, ref)
    runs = st.check_runs.get(sha, [])
    page, headers = _paginate(fake, path, q, runs)
    return (
        200,
        {
            "total_count": len(runs),
            "check_runs": [
                _check_obj(fake, st, r, path, "get", 200, item_key="check_runs") for r in page
            ],
        },
        headers,
    )


def commit_pulls(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, sha: str
) -> Result:
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha) or not _has(st, sha):
        raise HTTPError(422, f"No commit found for SHA: {sha}")
    prs = [st.prs[n] for n in st.commit_pulls.get(_resolve(st, sha), []) if n in st.prs]
    page, headers = _paginate(fake, path, q, prs)
    return 200, [fake.pr_obj(st, p, path, simple=True) for p in page], headers


def _has(st: RepoState, sha: str) -> bool:
    try:
        st.git.revparse_single(sha)
    except (KeyError, ValueError):
        return False
    return True


def _resolve(st: RepoState, ref: str) -> str:
    try:
        return str(st.git.revparse_single(ref).peel(pygit2.Commit).id)
    except (KeyError, ValueError):
        raise HTTPError(422, f"No commit found for SHA: {ref}") from None


# ---------------------------------------------------------------- refs


def update_ref(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, ref: str
) -> Result:
    d = _need(data, "sha")
    name = f"refs/{ref}"
    cur = st.git.references.get(name)
    if cur is None:
        raise HTTPError(422, "Reference does not exist")
    new = d["sha"]
    if not _has(st, new):
        raise HTTPError(422, "Object does not exist")
    old = str(cur.target)
    if (
        not d.get("force")
        and new != old
        and not st.git.descendant_of(pygit2.Oid(hex=new), pygit2.Oid(hex=old))
    ):
        raise HTTPError(422, "Update is not a fast forward")
    st.git.references.create(name, pygit2.Oid(hex=new), force=True)
    if ref.startswith("heads/"):
        fake.mark_merged_by_ref(st, ref[len("heads/") :], login)
    api = f"{fake.base}/repos/{st.slug}"
    return (
        200,
        fake.synth(
            path,
            "patch",
            200,
            {
                "ref": name,
                "node_id": f"REF_{new[:8]}",
                "url": f"{api}/git/{name}",
                "object": {"type": "commit", "sha": new, "url": f"{api}/git/commits/{new}"},
            },
        ),
        {},
    )


# ---------------------------------------------------------------- releases


def create_release(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    d = _need(data, "tag_name")
    if any(r["tag_name"] == d["tag_name"] for r in st.releases.values()):
        raise HTTPError(
            422,
            "Validation Failed",
            [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
        )
    rid = next(fake.ids)
    r = {
        "id": rid,
        "tag_name": d["tag_name"],
        "name": d.get("name") or d["tag_name"],
        "body": d.get("body") or "",
        "draft": bool(d.get("draft")),
        "prerelease": bool(d.get("prerelease")),
        "target_commitish": d.get("target_commitish") or "main",
        "created_at": _now(),
        "author": login,
    }
    st.releases[rid] = r
    return (
        201,
        fake.release_obj(st, r, path, "post", 201),
        {"Location": f"{fake.base}/repos/{st.slug}/releases/{rid}"},
    )


def get_release(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, id: str
) -> Result:
    r = st.releases.get(int(id))
    if r is None:
        raise HTTPError(404, "Not Found")
    return 200, fake.release_obj(st, r, path, "get", 200), {}


def release_by_tag(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, tag: str
) -> Result:
    for r in st.releases.values():
        if r["tag_name"] == urllib.parse.unquote(tag):
            return 200, fake.release_obj(st, r, path, "get", 200), {}
    raise HTTPError(404, "Not Found")


def upload_asset(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str, id: str
) -> Result:
    r = st.releases.get(int(id))
    if r is None:
        raise HTTPError(404, "Not Found")
    name = q.get("name")
    if not name:
        raise HTTPError(
            422,
            "Validation Failed",
            [{"resource": "ReleaseAsset", "code": "missing_field", "field": "name"}],
        )
    assets = st.assets.setdefault(r["id"], [])
    if any(a["name"] == name for a in assets):
        raise HTTPError(
            422,
            "Validation Failed",
            [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
        )
    blob = data if isinstance(data, bytes) else b""
    a = {
        "id": next(fake.ids),
        "name": name,
        "size": len(blob),
        "tag": r["tag_name"],
        "sha256": hashlib.sha256(blob).hexdigest(),
        "content_type": "application/octet-stream",
        "created_at": _now(),
        "uploader": login,
        "data": blob,
    }
    assets.append(a)
    return 201, fake.asset_obj(st, a), {}


def search_issues(fake: FakeGitHub, path: str, q: dict[str, str]) -> Result:
    """The qualifiers stablectl uses: repo:, is:pr, is:open, review:approved, base:."""
    import shlex

    terms = shlex.split(q.get("q", ""))
    repo = next((t[5:] for t in terms if t.startswith("repo:")), None)
    labels = [t[6:] for t in terms if t.startswith("label:")]
    st = fake.repos.get((repo or "").lower())
    if st is None:
        raise HTTPError(
            422,
            "Validation Failed",
            [
                {
                    "message": "The listed users and repositories cannot be searched "
                    "either because the resources do not exist or you do not have "
                    "permission to view them.",
                    "resource": "Search",
                    "field": "q",
                    "code": "invalid",
                }
            ],
        )
    if "is:issue" in terms:
        return _search_issue_items(fake, path, q, st, terms, labels)
    base = next((t[5:] for t in terms if t.startswith("base:")), None)
    prs = [
        p
        for p in (_pr(st, str(n)) for n in sorted(st.prs))
        if ("is:open" not in terms or p.state == "open")
        and (base is None or p.base == base)
        and ("review:approved" not in terms or _approved(st, p))
        and all(lb in p.labels for lb in labels)
    ]
    page, headers = _paginate(fake, path, q, prs)
    items = []
    api = f"{fake.base}/repos/{st.slug}"
    for p in page:
        item = fake.synth(
            path,
            "get",
            200,
            {
                "number": p.number,
                "title": p.title,
                "state": "open" if p.state == "open" else "closed",
                "url": f"{api}/issues/{p.number}",
                "repository_url": api,
                "html_url": f"https://github.invalid/{st.slug}/pull/{p.number}",
                "user": fake.user(p.user),
                "labels": [],
                "assignee": None,
                "milestone": None,
                "closed_at": p.closed_at,
                "body": p.body,
                "pull_request": {
                    "url": f"{api}/pulls/{p.number}",
                    "html_url": None,
                    "diff_url": None,
                    "patch_url": None,
                    "merged_at": p.merged_at,
                },
                "performed_via_github_app": None,
                "reactions": None,
                "text_matches": None,
                "repository": None,
                "type": None,
                "sub_issues_summary": None,
                "issue_dependencies_summary": None,
                "pinned_comment": None,
                "issue_field_values": None,
            },
            item_key="items",
        )
        items.append(_drop_nulls(item))
    return _search_result(len(prs), items, headers)


def _search_issue_items(
    fake: FakeGitHub,
    path: str,
    q: dict[str, str],
    st: RepoState,
    terms: list[str],
    labels: list[str],
) -> Result:
    """Issue search as GitHub does it for words: each word must be a token of the title (with
    `in:title`) or of the title or body; label: qualifiers must all be present."""
    import re as _re

    words = [w.lower() for t in terms if ":" not in t for w in _re.findall(r"[A-Za-z0-9]+", t)]
    title_only = "in:title" in terms
    found = []
    for n in sorted(st.issues):
        issue = st.issues[n]
        text = issue["title"] + ("" if title_only else " " + issue.get("body", ""))
        tokens = set(_re.findall(r"[a-z0-9]+", text.lower()))
        have = {lb.lower() for lb in issue["labels"]}
        state = next((t[6:] for t in terms if t.startswith("state:")), None)
        if (
            all(w in tokens for w in words)
            and all(lb.lower() in have for lb in labels)
            and (state is None or issue["state"] == state)
        ):
            found.append(n)
    page, headers = _paginate(fake, path, q, found)
    api = f"{fake.base}/repos/{st.slug}"
    items = []
    for n in page:
        issue = st.issues[n]
        item = fake.synth(
            path,
            "get",
            200,
            {
                "number": n,
                "title": issue["title"],
                "state": issue["state"],
                "url": f"{api}/issues/{n}",
                "repository_url": api,
                "html_url": f"https://github.invalid/{st.slug}/issues/{n}",
                "user": fake.user("reporter"),
                "labels": [
                    {
                        "id": 1000 + i,
                        "node_id": f"LA_{n}_{i}",
                        "url": f"{api}/labels/{lb}",
                        "name": lb,
                        "color": "ededed",
                        "default": False,
                        "description": None,
                    }
                    for i, lb in enumerate(issue["labels"])
                ],
                "assignee": None,
                "milestone": None,
                "closed_at": None,
                "body": issue.get("body", ""),
                "performed_via_github_app": None,
            },
            item_key="items",
        )
        item.pop("pull_request", None)
        items.append(_drop_nulls(item))
    return _search_result(len(found), items, headers)


# Optional members of a search item the schema types as objects: left out when unknown.
_NULLABLE = (
    "reactions",
    "text_matches",
    "repository",
    "type",
    "sub_issues_summary",
    "issue_dependencies_summary",
    "pinned_comment",
    "issue_field_values",
)


def _drop_nulls(item: dict[str, Any]) -> dict[str, Any]:
    for k in _NULLABLE:
        if item.get(k) is None:
            item.pop(k, None)
    return item


def _search_result(total: int, items: list[dict[str, Any]], headers: dict[str, str]) -> Result:
    body = {
        "total_count": total,
        "incomplete_results": False,
        "items": items,
        "search_type": "lexical",
    }
    return 200, body, headers


def _approved(st: RepoState, pr: PR) -> bool:
    latest: dict[str, str] = {}
    for r in st.reviews.get(pr.number, []):
        latest[r["user"]] = r["state"]
    return "APPROVED" in latest.values()


def list_labels(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    names = sorted(st.labels)
    page, headers = _paginate(fake, path, q, names)
    return 200, [fake.label(st, n) for n in page], headers


def create_label(
    fake: FakeGitHub, st: RepoState, path: str, q: dict[str, str], data: Any, login: str
) -> Result:
    d = _need(data, "name")
    if d["name"].lower() in {n.lower() for n in st.labels}:
        raise HTTPError(
            422,
            "Validation Failed",
            [{"resource": "Label", "code": "already_exists", "field": "name"}],
        )
    obj = fake.label(st, d["name"])
    obj.update(color=d.get("color", "ededed"), description=d.get("description") or "")
    fake.label_meta[(st.slug, d["name"])] = (obj["color"], obj["description"])
    return 201, obj, {}


def dispatch(
    fake: FakeGitHub,
    st: RepoState,
    path: str,
    q: dict[str, str],
    data: Any,
    login: str,
    workflow: str,
) -> Result:
    d = _need(data, "ref")
    if st.branch_sha(d["ref"]) is None:
        raise HTTPError(422, f"No ref found for: {d['ref']}")
    files = fake.workflow_files(st, d["ref"])
    if workflow not in files:
        raise HTTPError(404, "Not Found")
    fake.dispatches.append(
        {
            "repo": st.slug,
            "workflow": workflow,
            "ref": d["ref"],
            "inputs": d.get("inputs") or {},
            "by": login,
        }
    )
    return 204, None, {}


ROUTES: list[tuple[str, re.Pattern[str], Any]] = [
    (m, re.compile("^" + R + p + "$"), fn)
    for m, p, fn in [
        ("GET", "", get_repo),
        ("GET", "/pulls", list_pulls),
        ("POST", "/pulls", create_pull),
        ("GET", r"/pulls/(?P<number>\d+)", get_pull),
        ("PATCH", r"/pulls/(?P<number>\d+)", update_pull),
        ("PUT", r"/pulls/(?P<number>\d+)/merge", merge_pull),
        ("GET", r"/pulls/(?P<number>\d+)/reviews", list_reviews),
        ("GET", r"/pulls/(?P<number>\d+)/commits", pull_commits),
        ("POST", r"/pulls/(?P<number>\d+)/reviews", create_review),
        ("PUT", r"/issues/(?P<number>\d+)/labels", set_labels),
        ("DELETE", r"/issues/(?P<number>\d+)/labels", clear_labels),
        ("POST", r"/issues/(?P<number>\d+)/labels", add_labels),
        ("GET", r"/actions/runs/(?P<run_id>\d+)/jobs", run_jobs),
        ("POST", r"/issues/(?P<number>\d+)/comments", create_comment),
        ("GET", r"/issues/(?P<number>\d+)/comments", list_issue_comments),
        ("GET", r"/issues/comments", list_repo_comments),
        ("PATCH", r"/issues/comments/(?P<comment_id>\d+)", edit_comment),
        ("POST", r"/statuses/(?P<sha>[0-9a-f]{40})", create_status),
        ("GET", r"/commits/(?P<ref>[^/]+)/status", combined_status),
        ("GET", r"/commits/(?P<ref>[^/]+)/statuses", list_statuses),
        ("GET", r"/commits/(?P<ref>[^/]+)/check-runs", list_check_runs),
        ("POST", r"/check-runs", create_check_run),
        ("GET", r"/commits/(?P<sha>[^/]+)/pulls", commit_pulls),
        ("PATCH", r"/git/refs/(?P<ref>.+)", update_ref),
        ("POST", r"/releases", create_release),
        ("GET", r"/releases/tags/(?P<tag>.+)", release_by_tag),
        ("GET", r"/releases/(?P<id>\d+)", get_release),
        ("POST", r"/releases/(?P<id>\d+)/assets", upload_asset),
        ("GET", r"/labels", list_labels),
        ("POST", r"/labels", create_label),
        ("POST", r"/actions/workflows/(?P<workflow>[^/]+)/dispatches", dispatch),
    ]
]
