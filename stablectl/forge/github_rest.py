"""GitHub's REST API in stablectl's terms: its answers as stablectl's types (PRs, comments,
releases), the plumbing github3.py lacks, and its errors: JSON calls that expect
one status, paginated lists (Link: rel="next"), and each github3 exception turned into the
`ForgeError` that says what failed and what to do."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

import github3.exceptions as gh_exc
import requests
from github3.pulls import PullRequest as GhPullRequest
from github3.pulls import ShortPullRequest as GhShortPullRequest
from github3.repos.release import Release as GhRelease

from stablectl.errors import redact
from stablectl.forge.base import (
    Asset,
    AuthError,
    CheckState,
    Comment,
    ConflictError,
    ForgeError,
    ForgeStats,
    ForgeUnavailableError,
    NotFoundError,
    PullRequest,
    Release,
    parse_time,
    status_to_check,
)


@contextmanager
def operation(stats: ForgeStats, name: str, what: str, *, write: bool = False) -> Iterator[None]:
    """One forge operation: counted in `stats`, github3's exceptions translated (`what` names
    what was being done)."""
    with stats.op(name, write=write), translated(what):
        yield


@contextmanager
def translated(what: str) -> Iterator[None]:
    """github3's exceptions raised inside become ForgeErrors naming `what` was being done."""
    try:
        yield
    except gh_exc.AuthenticationFailed as e:
        raise AuthError(
            redact(f"{what}: GitHub rejected the token (401 {message(e)})"), status=401
        ) from None
    except gh_exc.ForbiddenError as e:
        raise AuthError(
            redact(f"{what}: forbidden (403 {message(e)}); the token lacks a permission"),
            status=403,
        ) from None
    except gh_exc.NotFoundError as e:
        raise NotFoundError(
            redact(
                f"{what}: not found (404 {message(e)}); it does not exist or the token "
                "cannot see it"
            ),
            status=404,
        ) from None
    except (gh_exc.MethodNotAllowed, gh_exc.Conflict) as e:
        raise ConflictError(redact(f"{what}: {message(e)} ({e.code})"), status=e.code) from None
    except gh_exc.UnprocessableEntity as e:
        raise ForgeError(
            redact(f"{what}: GitHub refused it (422 {message(e)})"), status=422
        ) from None
    except gh_exc.ServerError as e:
        raise ForgeUnavailableError(
            redact(
                f"{what}: GitHub kept failing ({e.code} {message(e)}) through every "
                "retry; run again later"
            ),
            status=e.code,
        ) from None
    except gh_exc.IncompleteResponse as e:
        raise ForgeError(redact(f"{what}: GitHub's answer lacked fields ({e})")) from None
    except gh_exc.TransportError as e:
        raise ForgeUnavailableError(redact(f"{what}: {e}")) from None
    except gh_exc.GitHubError as e:
        raise ForgeError(redact(f"{what}: {message(e)} ({e.code})"), status=e.code) from None


def call_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    data: Any = None,
    params: dict[str, str] | None = None,
    expect: int = 200,
) -> Any:
    kwargs: dict[str, Any] = {"params": params}
    if data is not None:
        kwargs["data"] = json.dumps(data)
    resp = session.request(method, url, **kwargs)
    if resp.status_code != expect:
        if resp.status_code >= 400:
            raise gh_exc.error_for(resp)
        raise ForgeError(f"unexpected HTTP {resp.status_code} for {method} {url}")
    return resp.json() if resp.content else None


def pages(
    session: requests.Session,
    url: str,
    params: dict[str, str] | None = None,
    list_key: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every item of a paginated list, following Link: rel="next"."""
    next_url: str | None = url
    query: dict[str, str] | None = {"per_page": "100", **(params or {})}
    while next_url:
        resp = session.request("GET", next_url, params=query)
        if resp.status_code != 200:
            raise gh_exc.error_for(resp)
        data = resp.json()
        items = data[list_key] if list_key else data
        yield from items
        next_url = resp.links.get("next", {}).get("url")
        query = None  # the next link carries the query


def message(e: gh_exc.GitHubError) -> str:
    msg = str(getattr(e, "msg", "") or "")
    errors = getattr(e, "errors", None) or []
    details = "; ".join(
        str(x.get("message") or " ".join(str(x[k]) for k in ("field", "code") if x.get(k)))
        if isinstance(x, dict)
        else str(x)
        for x in errors
    )
    return f"{msg}: {details}" if details else msg


def pull_request_of(p: GhPullRequest | GhShortPullRequest) -> PullRequest:
    """A PR as github3 reads it, in stablectl's terms (merged is a state of its own)."""
    raw = p.as_dict()
    merged = bool(raw.get("merged_at"))
    state: Literal["open", "closed", "merged"] = (
        "merged" if merged else ("open" if p.state == "open" else "closed")
    )
    return PullRequest(
        number=int(p.number),
        title=p.title or "",
        body=p.body or "",
        head=p.head.ref,
        base=p.base.ref,
        head_sha=p.head.sha,
        state=state,
        draft=bool(raw.get("draft", False)),
        labels=tuple(sorted(lb["name"] for lb in raw.get("labels") or [])),
        author=p.user.login if p.user else "",
        url=p.html_url,
        merge_sha=raw.get("merge_commit_sha") if merged else None,
        # The list endpoint has no `merged_by`: `get_pr` reads it.
        merged_by=((raw.get("merged_by") or {}).get("login") or None) if merged else None,
        merged_at=parse_time(raw["merged_at"]) if merged else None,
    )


def checks_of(
    statuses: Iterable[dict[str, Any]], runs: Iterable[dict[str, Any]]
) -> list[CheckState]:
    """Commit statuses (newest first, as GitHub lists them) and check runs as CheckStates:
    the latest per name *and* source (a status's creator; a check run's app as its bot login,
    `<slug>[bot]`), so that one reporter's result never hides another's."""
    found: dict[tuple[str, str], CheckState] = {}
    for st in statuses:
        creator = (st.get("creator") or {}).get("login", "")
        if (st["context"], creator) not in found:
            c = status_to_check(st["context"], st["state"], st.get("target_url") or "")
            found[(st["context"], creator)] = replace(c, source=creator)
    for r in sorted(runs, key=lambda r: (r.get("started_at") or "", r["id"])):
        app = (r.get("app") or {}).get("slug") or ""
        source = f"{app}[bot]" if app else ""
        url = r.get("html_url") or r.get("details_url") or ""
        found[(r["name"], source)] = CheckState(
            r["name"], r["status"], r.get("conclusion"), url, "check_run", source
        )
    return [found[k] for k in sorted(found)]


def comment_of(raw: dict[str, Any]) -> Comment:
    """An issue comment of the REST API (its PR number read from `issue_url`)."""
    number = int(str(raw["issue_url"]).rstrip("/").rsplit("/", 1)[1])
    created = parse_time(raw["created_at"])
    return Comment(
        int(raw["id"]),
        number,
        (raw.get("user") or {}).get("login", ""),
        raw.get("body") or "",
        created,
        raw["html_url"],
        edited=parse_time(raw.get("updated_at") or raw["created_at"]) > created,
    )


def release_of(r: GhRelease) -> Release:
    """A release as github3 reads it, with its assets."""
    return Release(
        id=int(r.id),
        tag=r.tag_name,
        name=r.name or "",
        body=r.body or "",
        draft=bool(r.draft),
        prerelease=bool(r.prerelease),
        url=r.html_url,
        assets=tuple(Asset(a.name, int(a.size), a.browser_download_url) for a in r.original_assets),
    )
