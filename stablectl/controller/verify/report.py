"""What `verify` found: typed records of each series' audit, and the findings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from stablectl.jsondoc import JSONDoc

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    series: str
    subject: str  # a commit SHA, a tag, or a file
    what: str


@dataclass
class AdaptedCommit:
    """A commit that is not upstream's change verbatim: its exact interdiff and its record."""

    commit: str
    source: str
    lines: int
    interdiff: str  # SHA-256 of the interdiff (gitops.provenance.Interdiff.digest)
    files: tuple[str, ...]
    subject: str
    origin: str
    pr: int | None
    recorded: bool
    review_checked: bool = False
    approvers: list[str] = field(default_factory=list)
    # Where the adaptation came from, when a distribution published it (its
    # `Stablectl-Downstream:` trailer: "Debian python2.7 2.7.18-8+deb11u1: CVE-2020-8492.diff").
    downstream: str = ""

    def to_json(self) -> JSONDoc:
        return {
            "commit": self.commit,
            "downstream": self.downstream or None,
            "source": self.source,
            "lines": self.lines,
            "interdiff": self.interdiff,
            "files": list(self.files),
            "subject": self.subject,
            "origin": self.origin,
            "pr": self.pr,
            "recorded": self.recorded,
            "review_checked": self.review_checked,
            "approvers": self.approvers,
        }


@dataclass
class ReleaseAudit:
    """One release tag as verified: the tag, its chain, its signature, its files."""

    tag: str
    tag_object: str
    annotated: bool
    commit: str | None = None
    previous: str | None = None
    signed_by: str | None = None
    sums_signed_by: str | None = None
    manifest: str | None = None  # the manifest's path, when the release files were at hand
    artifacts_checked: int | None = None
    sigstore_bundle: bool = False
    rebuilt: list[str] = field(default_factory=list)
    review_checked: bool = False

    def to_json(self) -> JSONDoc:
        return {
            "tag": self.tag,
            "tag_object": self.tag_object,
            "annotated": self.annotated,
            "commit": self.commit,
            "previous": self.previous,
            "signed_by": self.signed_by,
            "sums_signed_by": self.sums_signed_by,
            "manifest": self.manifest,
            "artifacts_checked": self.artifacts_checked,
            "sigstore_bundle": self.sigstore_bundle,
            "rebuilt": self.rebuilt,
            "review_checked": self.review_checked,
        }


@dataclass
class SeriesAudit:
    series: str
    branch: str
    base: str | None = None
    tip: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    adapted: list[AdaptedCommit] = field(default_factory=list)
    releases: list[ReleaseAudit] = field(default_factory=list)
    # release commit -> the commits it released (backports and downstream patches), in order
    released_commits: dict[str, list[str]] = field(default_factory=dict)
    # commits that did not come through a merged stablectl PR (pushed straight), in order
    direct: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    remote: str
    audits: list[SeriesAudit] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    log_entries: int | None = None  # releases replayed from a release log, if one was given
    unchecked_reviews: int = 0  # adaptations whose review no forge could confirm
    commits_only: bool = False  # release files were not audited (`verify --commits-only`)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def errors(self) -> list[str]:
        return [f"{f.subject[:12]}: {f.what}" for f in self.findings if f.level == "error"]

    def to_json(self) -> JSONDoc:
        return {
            "schema": "stablectl.verify/1",
            "remote": self.remote,
            "ok": self.ok,
            "series": [
                {
                    "series": a.series,
                    "branch": a.branch,
                    "base": a.base,
                    "tip": a.tip,
                    "counts": dict(a.counts),
                    "adapted": [x.to_json() for x in a.adapted],
                    "direct": list(a.direct),
                    "releases": [r.to_json() for r in a.releases],
                }
                for a in self.audits
            ],
            "release_log_entries": self.log_entries,
            "unchecked_reviews": self.unchecked_reviews,
            "commits_only": self.commits_only,
            "findings": [f.__dict__ for f in self.findings],
        }
