"""What selection obeys: the flag rules (paths, messages, trailers, labels, notes, issues,
commits, advisories), exclusions, follow-ups, applicability and the prerequisite search."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stablectl.policy.fields import Model, Name, Sha, regex


class NotesRule(Model):
    ref: str = Field(default="refs/notes/commits", description="Notes ref to read.")
    match: str = Field(description="Regular expression searched in the note text.")

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        return regex(v)


class IssuesRule(Model):
    """The upstream issues a commit names (`gh-N`), read as they are now on the forge: CPython
    retitles an issue `[CVE-…] …` and labels it once a CVE is assigned, often long after the
    fix was committed."""

    search: str | None = Field(
        default=None,
        description="Issue search terms that narrow what is read from the forge (GitHub search "
        "syntax, e.g. `CVE in:title`; `repo:` and `is:issue` are added). Default: one search "
        "per label in `labels`. Needed when only `title` is given.",
    )
    title: str | None = Field(
        default=None, description="Regular expression searched in the issue's current title."
    )
    labels: list[str] | None = Field(
        default=None, description="The issue carries at least one of these labels now."
    )
    refresh_hours: float = Field(
        default=6,
        ge=0,
        description="How long a search's answer is reused from the state directory before "
        "it is asked again (0: every run).",
    )

    @field_validator("title")
    @classmethod
    def _title_regex(cls, v: str | None) -> str | None:
        return None if v is None else regex(v)

    @model_validator(mode="after")
    def _searchable(self) -> IssuesRule:
        if self.title is None and not self.labels:
            raise ValueError("an issues condition needs `title` or `labels`")
        if self.search is None and not self.labels:
            raise ValueError(
                "`title` alone would read every upstream issue: give `search` terms that narrow "
                "it (e.g. 'CVE in:title')"
            )
        return self

    def queries(self) -> list[str]:
        """The forge searches this condition needs."""
        if self.search is not None:
            return [self.search]
        return [f'label:"{lb}"' for lb in self.labels or ()]

    def matches(self, title: str, labels: Sequence[str]) -> str | None:
        """Why an issue with this title and these labels matches, or None."""
        why = []
        if self.title is not None:
            m = re.search(self.title, title)
            if m is None:
                return None
            why.append(f"title {m.group(0)!r}")
        if self.labels is not None:
            hit = sorted(set(labels) & set(self.labels))
            if not hit:
                return None
            why.append(f"label {hit[0]}")
        return ", ".join(why)


class FlagRule(Model):
    """A rule that flags upstream commits. Conditions given together must all match."""

    name: Name = Field(description="Rule name, shown in plans, PR bodies and release notes.")
    security: bool = Field(
        default=False, description="Fixes flagged by this rule are security fixes."
    )
    paths: list[str] | None = Field(
        default=None, description="Globs; matches if the commit adds or changes such a path."
    )
    message: str | None = Field(
        default=None, description="Regular expression searched in the commit message."
    )
    trailers: dict[str, str] | None = Field(
        default=None, description="Trailer key → regular expression of its value."
    )
    labels: list[str] | None = Field(
        default=None, description="Labels of the upstream PR (needs the forge)."
    )
    notes: NotesRule | None = Field(default=None, description="Git notes attached to the commit.")
    issues: IssuesRule | None = Field(
        default=None,
        description="The current title or labels of an upstream issue the commit names "
        "(`gh-N`; needs the forge).",
    )
    commits: list[Sha] | None = Field(
        default=None, description="Explicit SHAs (full or abbreviated) to flag."
    )
    advisories: str | None = Field(
        default=None,
        description="OSV advisory database (a directory, or a git URL or path fetched each run, "
        "e.g. https://github.com/psf/advisory-database): flags fixed commits, their backports, "
        "and commits naming an issue or PR the advisories reference.",
    )
    advisory_repo: str | None = Field(
        default=None,
        description="Only GIT ranges of this repository count (e.g. "
        "https://github.com/python/cpython); default: any.",
    )

    @field_validator("message")
    @classmethod
    def _message_regex(cls, v: str | None) -> str | None:
        return None if v is None else regex(v)

    @field_validator("trailers")
    @classmethod
    def _trailer_regex(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            for value in v.values():
                regex(value)
        return v

    @field_validator("paths")
    @classmethod
    def _globs(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            for g in v:
                if not g or g.startswith("/"):
                    raise ValueError(f"path glob {g!r} must be relative to the repository root")
        return v

    @model_validator(mode="after")
    def _has_condition(self) -> FlagRule:
        if not any(
            x is not None
            for x in (
                self.paths,
                self.message,
                self.trailers,
                self.labels,
                self.notes,
                self.issues,
                self.commits,
                self.advisories,
            )
        ):
            raise ValueError(
                "a flag rule needs at least one of paths, message, trailers, labels, notes, "
                "issues, commits, advisories"
            )
        return self

    @property
    def needs_forge(self) -> bool:
        """Whether part of this rule is decided by what the forge says (labels, issues)."""
        return self.labels is not None or self.issues is not None

    def path_matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for g in self.paths or ())


class Exclude(Model):
    sha: Sha = Field(description="Upstream commit never to backport (any member of its fix).")
    reason: str = Field(description="Why; shown in plans.")


class Applicability(Model):
    """Which conflicting fixes do not concern a line (docs/engine.md, Applicability)."""

    skip: bool = Field(
        default=True,
        description="Open no PR for a not-applicable fix (it is listed in `plan`, `status` and "
        "the feed with its reason; `/stablectl backport SHA` still opens one). False: a draft "
        "conflict PR as for any conflict.",
    )
    main_only_days: int = Field(
        default=30,
        ge=1,
        description="Information only, never a verdict: a conflicting fix only on `main` is "
        'shown as "upstream did not backport it" when the series\' own maintenance branch '
        "took backports of fixes made this many days (or more) after it.",
    )
    not_code: list[str] = Field(
        default_factory=lambda: ["Misc/NEWS.d/*", "Misc/NEWS", "Misc/ACKS", "Doc/*"],
        description="Path globs that are not code (NEWS entries, documentation): a pick that "
        "changes only these on the line fixes nothing there (`not-applicable`, no CVE claimed), "
        "and a fix that changes only these is never the fix others follow up.",
    )

    news: list[str] = Field(
        default_factory=lambda: ["Misc/NEWS.d/*", "Misc/NEWS", "NEWS", "NEWS.*"],
        description="Path globs of changelog entries. A conflict in one (the line never had "
        "the entry the fix edits) is resolved by adding the fix's entry whole as the line's "
        "own, when the code picks clean (`new-to-adapt`, docs/engine.md).",
    )
    tests: list[str] = Field(
        default_factory=lambda: ["*/test/*", "*/tests/*", "test/*", "tests/*", "*/test_*"],
        description="Path globs of tests: a verdict about the line's code (absent, already "
        "there) reads the code a fix changes with its tests aside (a test of code the line "
        "lacks says nothing more); a fix that changes tests alone is judged on them.",
    )
    not_built: list[str] = Field(
        default_factory=list,
        description="The build profile every series shares: path globs a distribution never "
        "builds or ships from the project (for CPython, `policies/cpython.yaml`: the Windows "
        "build and installer `PC/*`, `PCbuild/*`, `Tools/msi/*`, `Tools/nuget/*`, macOS's "
        "installer and framework files `Mac/*`). Each series' `not_built` adds to it. A fix "
        "whose code changes all fall under them is `not-applicable: not built by this line`.",
    )

    def is_code(self, path: str) -> bool:
        return not any(fnmatch.fnmatchcase(path, g) for g in self.not_code)

    def is_test(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for g in self.tests)


class Prerequisites(Model):
    """Upstream commits a conflicting fix needs first (docs/engine.md, Prerequisites)."""

    max_commits: int = Field(
        default=3,
        ge=0,
        le=10,
        description="At most this many upstream commits are stacked under one fix to make it "
        "apply (smallest set first); 0 turns the search off.",
    )
    max_candidates: int = Field(
        default=8,
        ge=1,
        le=32,
        description="Of the commits blame names, the ones writing the most conflicting lines "
        "are tried, at most this many.",
    )
    vetted_only: bool = Field(
        default=True,
        description="Only commits upstream put on a maintenance branch (a series' own or a "
        "sibling's), or whose backport is on one, may be prerequisites: a commit only on "
        "`main` is a change upstream judged unfit for a stable line (a feature, a refactor). "
        "False: any commit blame names.",
    )
    sources: int = Field(
        default=1,
        ge=1,
        le=10,
        description="The search runs for at most this many of a conflicting fix's sources, in "
        "preference order (its own branch's backport first). Prerequisites found for a farther "
        "source are commits of a farther branch, mostly `main`-only and refused by "
        "`vetted_only`; each search blames every conflicting file (a far line's plan spent "
        "most of its prerequisite time on sources after the first).",
    )
    horizon_days: int = Field(
        default=365,
        ge=0,
        description="Blame attributes lines to commits made at most this many days before the "
        "base tag (and any after it): a line older than that is never a prerequisite to pick. "
        "Keeps a far line's search from walking a decade of another branch (a 2.7 line's "
        "blame of a main fix went back to 2010).",
    )


FollowUpRef = Literal["commit", "pr", "issue", "advisory"]
FOLLOW_UP_RULE = "follow-up"  # the rule name of a follow-up's flag
FOLLOW_UP_REFS: tuple[FollowUpRef, ...] = ("commit", "pr", "issue", "advisory")


class FollowUps(Model):
    """Later upstream commits that complete a flagged fix (docs/engine.md, Follow-ups)."""

    by: list[FollowUpRef] = Field(
        default_factory=lambda: list(FOLLOW_UP_REFS),
        description="What makes a later commit follow a flagged fix up: it names one of the "
        "fix's commits (SHA), its PR (GH-N, #N) or its issue (gh-N, bpo-N), or an advisory "
        "lists both (the later fix then follows the earlier). Empty: off.",
    )
    max_per_fix: int = Field(
        default=8,
        ge=1,
        le=50,
        description="An issue named by more later commits than this is an umbrella issue, not "
        "one change: then only commits naming the fix's SHA or PR follow it up.",
    )
