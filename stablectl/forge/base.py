"""The forge seam: types, the `Forge` protocol, errors and the PR marker.

The controller only ever sees these types; `github.py` and `local.py` implement the protocol
and pass the same contract suite (tests/forge/test_forge_contract.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from stablectl.errors import StablectlError, redact
from stablectl.text import Trusted

PRState = Literal["open", "closed", "merged"]
ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
CheckStatus = Literal["queued", "in_progress", "completed"]
StatusState = Literal["pending", "success", "failure", "error"]
MergeMethod = Literal["rebase", "fast-forward", "merge", "squash"]

MARKER_RE = re.compile(r"<!--\s*stablectl:marker\s+(\{.*?\})\s*-->", re.S)


# ---------------------------------------------------------------- errors


class ForgeError(StablectlError):
    """A forge call failed for a reason retrying will not fix; the message names the object."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(redact(message))  # GitHub may echo what it was sent


class NotFoundError(ForgeError):
    """The repository, PR, release or ref does not exist (or the token cannot see it)."""


class AuthError(ForgeError):
    """The token is missing, invalid (401) or lacks a permission (403)."""


class ConflictError(ForgeError):
    """The forge refused a write that contradicts its state (PR exists, not mergeable, ...)."""


class HeadMovedError(ConflictError):
    """A PR's head is not the commit the caller expected (pushed after approval)."""


class RateLimitError(ForgeError):
    """Rate limited for longer than the policy allows to wait."""


class ForgeUnavailableError(ForgeError):
    """5xx or connection failures persisted through every retry."""


# ---------------------------------------------------------------- marker


@dataclass(frozen=True)
class Marker:
    """Machine-readable payload stablectl hides in the bodies of the PRs it opens."""

    kind: str
    series: str
    original: str = ""
    source: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> Trusted:
        payload: dict[str, object] = {"v": 1, "kind": self.kind, "series": self.series}
        if self.original:
            payload["original"] = self.original
        if self.source:
            payload["source"] = self.source
        if self.extra:
            payload["extra"] = dict(sorted(self.extra.items()))
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return Trusted(f"<!-- stablectl:marker {text} -->")

    @classmethod
    def parse(cls, body: str | None) -> Marker | None:
        """The marker in a PR body or comment, or None (a damaged marker counts as none).
        stablectl writes its marker last, after any text from elsewhere, so the last one is
        read: text quoted above it cannot stand in for it (and templates defuse `<!--` in
        such text anyway)."""
        if not body:
            return None
        found = list(MARKER_RE.finditer(body))
        if not found:
            return None
        m = found[-1]
        try:
            data = json.loads(m.group(1))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return None
        extra = data.get("extra") or {}
        return cls(
            kind=data["kind"],
            series=str(data.get("series", "")),
            original=str(data.get("original", "")),
            source=str(data.get("source", "")),
            extra={str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {},
        )


# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class PullRequest:
    number: int
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    state: PRState
    draft: bool
    labels: tuple[str, ...]
    author: str
    url: str
    merge_sha: str | None = None
    # Who merged it and when, as the forge records it (a merge through the API, or a push
    # that moved the base onto the head); None while it is not merged, or where unknown.
    merged_by: str | None = None
    merged_at: dt.datetime | None = None

    @property
    def marker(self) -> Marker | None:
        return Marker.parse(self.body)


@dataclass(frozen=True)
class Review:
    id: int
    user: str
    state: ReviewState
    commit: str
    submitted_at: dt.datetime


@dataclass(frozen=True)
class CheckState:
    """One check on a commit; commit statuses and check runs in one shape."""

    name: str
    status: CheckStatus
    conclusion: str | None
    url: str
    kind: Literal["status", "check_run"]
    # Who reported it: a status's creator (login), a check run's app as its bot login
    # (`<app slug>[bot]`, e.g. `github-actions[bot]`). Only the policy's CI identities count.
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed" and self.conclusion in ("success", "neutral", "skipped")

    @property
    def failed(self) -> bool:
        return self.status == "completed" and not self.ok


@dataclass(frozen=True)
class Asset:
    name: str
    size: int
    url: str


@dataclass(frozen=True)
class Release:
    id: int
    tag: str
    name: str
    body: str
    draft: bool
    prerelease: bool
    url: str
    assets: tuple[Asset, ...] = ()


@dataclass(frozen=True)
class UpstreamIssue:
    """An upstream issue as it is now (for issue flag rules)."""

    number: int
    title: str
    labels: tuple[str, ...]
    state: str  # open | closed


def search_matches(terms: str, title: str, labels: Sequence[str]) -> bool:
    """The subset of GitHub's issue search a forge without a search engine applies:
    `label:"x"` qualifiers must all be present, other words must appear in the title
    (case-insensitive, as whole words); unknown qualifiers (`in:title`, `is:closed`, …) are
    ignored."""
    import shlex

    have = {lb.lower() for lb in labels}
    words = set(re.findall(r"[a-z0-9]+", title.lower()))
    for term in shlex.split(terms):
        key, sep, value = term.partition(":")
        if sep and key.lower() == "label":
            if value.lower() not in have:
                return False
        elif sep:
            continue
        elif not set(re.findall(r"[a-z0-9]+", term.lower())) <= words:
            return False
    return True


@dataclass(frozen=True)
class Comment:
    id: int
    number: int
    user: str
    body: str
    created_at: dt.datetime
    url: str
    # Edited after it was posted: on GitHub anyone with write access may edit anyone's
    # comment, and the author shown stays the original one.
    edited: bool = False


@dataclass
class ForgeStats:
    """What a run cost: operations, API requests per operation, writes, retries, waits."""

    ops: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    not_modified: int = 0
    retries: int = 0
    waited_seconds: float = 0.0
    current: str = "-"
    after_write: Callable[[], None] | None = field(default=None, repr=False)

    @contextmanager
    def op(self, name: str, *, write: bool = False) -> Iterator[None]:
        outer, self.current = self.current, name
        self.ops[name] += 1
        if write:
            self.writes += 1
        try:
            yield
        finally:
            self.current = outer
        if write and self.after_write is not None:
            self.after_write()  # a write point (tests kill the process here)

    def as_dict(self) -> dict[str, object]:
        return {
            "operations": dict(sorted(self.ops.items())),
            "api_requests": sum(self.requests.values()),
            "api_requests_by_operation": dict(sorted(self.requests.items())),
            "writes": self.writes,
            "not_modified": self.not_modified,
            "retries": self.retries,
            "waited_seconds": round(self.waited_seconds, 3),
        }


@dataclass(frozen=True)
class CIRequest:
    """How backport PRs get tested on this fork (from the policy's `ci` section): the forge
    decides what asking for a test run means for it."""

    trigger: Literal["dispatch", "app"]
    workflow: str  # the test workflow's file name (dispatch mode)
    ref: str  # the fork branch holding the workflows
    status_name: str  # the commit status the test workflow reports


@runtime_checkable
class Forge(Protocol):
    """What stablectl needs from a forge. Implementations: GitHubForge, LocalForge."""

    kind: str
    stats: ForgeStats

    def list_prs(self, state: Literal["open", "all"] = "open") -> list[PullRequest]:
        """PRs on the fork that carry stablectl's marker."""
        ...

    def get_pr(self, number: int) -> PullRequest: ...

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
        """Open a PR from branch `head` of the fork into `base`; an open PR for the same head
        is returned as is (so a retried or concurrent call never makes a duplicate)."""
        ...

    def update_pr(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest: ...

    def close_pr(self, number: int, comment: str | None = None) -> PullRequest: ...

    def set_labels(self, number: int, labels: Sequence[str]) -> None: ...

    def comment(self, number: int, body: str) -> Comment: ...

    def comments_since(self, since: dt.datetime) -> list[Comment]:
        """Comments on the fork's issues and PRs created at or after `since`."""
        ...

    def pr_comments(self, number: int) -> list[Comment]:
        """Every comment on PR `number`, oldest first."""
        ...

    def reviews(self, number: int) -> list[Review]: ...

    def pr_commits(self, number: int) -> list[tuple[str, str]]:
        """The commits PR `number` brings, as the forge recorded them (sha, message), oldest
        first: for a merged PR, those it had when it was merged, whatever its body says."""
        ...

    def approved_prs(self, base: str) -> set[int]:
        """Open PRs into `base` with at least one approving review (one request on GitHub,
        so that a quiet run does not read every PR's reviews)."""
        ...

    def checks(self, sha: str) -> list[CheckState]:
        """Commit statuses and check runs of `sha`, the latest per name *and source* (who
        reported it), so that a result from one source never hides another's."""
        ...

    def set_status(
        self, sha: str, name: str, state: StatusState, url: str = "", description: str = ""
    ) -> None: ...

    def merge(self, number: int, expected_head: str, method: MergeMethod) -> str:
        """Merge PR `number` if its head is still `expected_head`; returns the new base tip."""
        ...

    def get_release(self, tag: str) -> Release | None: ...

    def create_release(
        self, tag: str, name: str, body: str, *, draft: bool = False, prerelease: bool = False
    ) -> Release:
        """Create the release for an existing tag; an existing release is returned as is."""
        ...

    def upload_asset(self, release: Release, name: str, data: bytes, content_type: str) -> Asset:
        """Attach an asset; one of the same name and size already there is kept."""
        ...

    def upstream_pr_labels(self, sha: str) -> list[str]:
        """Labels of the upstream PR(s) that introduced commit `sha`."""
        ...

    def labeled_prs(self, label: str) -> set[int]:
        """Numbers of the upstream PRs that carry `label` (for label flag rules)."""
        ...

    def upstream_issues(self, terms: str) -> list[UpstreamIssue]:
        """The upstream repository's issues (not PRs) that an issue search for `terms` finds,
        with their current titles and labels (for issue flag rules)."""
        ...

    def ensure_labels(self, labels: Mapping[str, tuple[str, str]]) -> list[str]:
        """Create the labels (name → (colour, description)) the fork lacks; returns those
        created."""
        ...

    def dispatch_workflow(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> None:
        """Start a `workflow_dispatch` run of `workflow` (file name) on `ref`."""
        ...

    def request_tests(self, number: int, sha: str, how: CIRequest, *, again: bool) -> None:
        """Make sure PR `number`'s head `sha` gets tested: after a push (`again=False`) and on
        a `/stablectl retest` (`again=True`). What that takes is the forge's business (GitHub:
        dispatch the test workflow and mark the head pending; the local forge: queue a
        `stablectl ci run`)."""
        ...

    def web_url(self) -> str | None:
        """The fork's web address (for links in release notes and the manifest), or None
        where the forge has no web pages."""
        ...


def parse_time(value: str | dt.datetime | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def status_to_check(name: str, state: str, url: str) -> CheckState:
    """A commit status in CheckState's shape (pending → in progress; error → failure)."""
    if state == "pending":
        return CheckState(name, "in_progress", None, url, "status")
    conclusion = "success" if state == "success" else "failure"
    return CheckState(name, "completed", conclusion, url, "status")
