"""The plain actions a sync run decides, one typed payload per kind, and the run's report.

Deciding produces actions; `apply.py` carries them out. An action is a value: what it
changes (`payload`), where (`series`, `target`) and why (`detail`, shown to people).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from stablectl import __version__

if TYPE_CHECKING:
    from stablectl.controller.plan import Plan, SeriesPlan
    from stablectl.controller.release_history import ReleaseCommit
    from stablectl.forge.base import MergeMethod, Release

ActionKind = Literal[
    "create-stable",
    "push",
    "open",
    "update",
    "labels",
    "close",
    "delete-branch",
    "comment",
    "merge",
    "skip",
    "retest",
    "tag",
    "release",
]


@dataclass(frozen=True)
class CreateStable:
    """Create the stable branch at its base tag."""

    kind: ClassVar[ActionKind] = "create-stable"
    branch: str
    sha: str


@dataclass(frozen=True)
class Push:
    """Move one of stablectl's branches from `old` (None: create) to `new`."""

    kind: ClassVar[ActionKind] = "push"
    ref: str
    new: str
    old: str | None


@dataclass(frozen=True)
class OpenPR:
    kind: ClassVar[ActionKind] = "open"
    head: str
    base: str
    title: str
    body: str
    draft: bool
    labels: tuple[str, ...]
    test_sha: str | None  # a head to ask the forge to test once the PR exists


@dataclass(frozen=True)
class UpdatePR:
    kind: ClassVar[ActionKind] = "update"
    pr: int
    title: str
    body: str
    test_sha: str | None = None


@dataclass(frozen=True)
class SetLabels:
    """The labels sync decides; others on the PR are kept as they are at apply time."""

    kind: ClassVar[ActionKind] = "labels"
    pr: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ClosePR:
    """Close with a comment (`comment_kind` picks its text) and delete `branch` if given."""

    kind: ClassVar[ActionKind] = "close"
    pr: int
    comment_kind: str
    comment_detail: str
    branch: str | None


@dataclass(frozen=True)
class DeleteBranch:
    kind: ClassVar[ActionKind] = "delete-branch"
    ref: str
    old: str | None


@dataclass(frozen=True)
class PostComment:
    kind: ClassVar[ActionKind] = "comment"
    number: int
    body: str


@dataclass(frozen=True)
class MergePR:
    """Merge `pr` if its head is still `head`; `stable` must only move forward."""

    kind: ClassVar[ActionKind] = "merge"
    pr: int
    head: str
    branch: str
    stable: str
    method: MergeMethod | None = None  # None: the policy's release.merge_method


@dataclass(frozen=True)
class SkipPR:
    kind: ClassVar[ActionKind] = "skip"
    pr: int
    by: str = ""  # the maintainer who asked


@dataclass(frozen=True)
class Retest:
    kind: ClassVar[ActionKind] = "retest"
    pr: int
    sha: str


@dataclass(frozen=True)
class TagRelease:
    """Create the annotated (optionally signed) release tag and push it; never moved."""

    kind: ClassVar[ActionKind] = "tag"
    tag: str
    commit: str
    message: str


@dataclass(frozen=True)
class PublishRelease:
    """Build the release's artifacts and make sure the forge release has every one."""

    kind: ClassVar[ActionKind] = "release"
    tag: str
    series_plan: SeriesPlan = field(repr=False)
    release: ReleaseCommit = field(repr=False)
    published: Release | None = field(default=None, repr=False)  # the forge's, as decided on


Payload = (
    CreateStable
    | Push
    | OpenPR
    | UpdatePR
    | SetLabels
    | ClosePR
    | DeleteBranch
    | PostComment
    | MergePR
    | SkipPR
    | Retest
    | TagRelease
    | PublishRelease
)


@dataclass(frozen=True)
class Action:
    series: str
    target: str
    detail: str
    payload: Payload = field(repr=False)

    @property
    def kind(self) -> ActionKind:
        return self.payload.kind

    def to_json(self) -> dict[str, str]:
        return {
            "action": self.kind,
            "series": self.series,
            "target": self.target,
            "detail": self.detail,
        }


@dataclass
class Findings:
    """What a stage of the run has to tell people: problems (the run fails) and notices."""

    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # Notices that are the normal course of a run (a PR waiting for its approvals or checks,
    # a fix a maintainer skipped): reported, never raised as a warning in an Actions run.
    routine: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def notice(self, text: str, *, routine: bool = False) -> None:
        self.notices.append(text)
        if routine:
            self.routine.append(text)

    def extend(self, other: Findings) -> None:
        self.problems += other.problems
        self.notices += other.notices
        self.routine += other.routine


@dataclass(frozen=True)
class PRView:
    """One of stablectl's backport PRs as the report shows it."""

    number: int
    state: str
    draft: bool
    title: str
    head: str
    head_sha: str
    labels: tuple[str, ...]
    url: str
    original: str
    status: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "state": self.state,
            "draft": self.draft,
            "title": self.title,
            "head": self.head,
            "head_sha": self.head_sha,
            "labels": list(self.labels),
            "url": self.url,
            "original": self.original,
            "status": self.status,
        }

    def __getitem__(self, key: str) -> object:  # templates and the CLI read it as a mapping
        return self.to_json()[key]


@dataclass
class SyncReport:
    plan: Plan
    actions: list[Action]
    applied: list[Action]
    problems: list[str]
    notices: list[str]
    prs: dict[str, list[PRView]]
    api: dict[str, object]  # ForgeStats.as_dict(): what the run cost on the forge
    dry_run: bool
    write_points: int = 0
    routine: list[str] = field(default_factory=list)  # of `notices`: Findings.routine

    @property
    def warnings(self) -> list[str]:
        """The notices someone should look at: every one that is not routine."""
        return [n for n in self.notices if n not in self.routine]

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "stablectl.sync/1",
            "stablectl": __version__,
            "dry_run": self.dry_run,
            "actions": [a.to_json() for a in self.actions],
            "applied": len(self.applied),
            "write_points": self.write_points,
            "problems": self.problems,
            "notices": self.notices,
            "warnings": self.warnings,
            "prs": {s: [p.to_json() for p in prs] for s, prs in self.prs.items()},
            "api": self.api,
            "plan": self.plan.to_json(),
        }
