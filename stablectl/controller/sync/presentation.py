"""How stablectl's PRs, branches and comments look: names, titles, labels, markers, bodies.

Everything here is a function of its inputs (no timestamps): the same fix renders the same PR
on every run, so a second run finds nothing to update.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pygit2

from stablectl import __version__
from stablectl.controller.downstream import Adaptation
from stablectl.controller.missing_names import decode
from stablectl.controller.parts import Split
from stablectl.controller.plan import PlannedFix
from stablectl.controller.prerequisites import Prerequisite
from stablectl.controller.release_history import ShippedFix
from stablectl.controller.sync.actions import Action, PostComment
from stablectl.forge.base import Comment, Marker
from stablectl.gitops.messages import ADAPTED_TRAILER, backport_title
from stablectl.gitops.pick_result import ConflictFile
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import DEFAULT_LABELS, Policy, Series
from stablectl.templates import render

NEWS_GLOB = "Misc/NEWS.d/next/*"
PickStatus = Literal["clean", "conflict"]


def prerequisites_text(shas: Sequence[str]) -> str:
    """How a PR's marker records its prerequisites ("" for none)."""
    return ",".join(sha[:12] for sha in shas)


def branch_name(series: str, key: str) -> str:
    return f"stablectl/{series}/{key[:12]}"


def own_labels(policy: Policy) -> set[str]:
    """The labels sync decides; `tests-failed` is the CI's verdict and stays as CI set it
    (sync used to strip it on its next run)."""
    roles = {*DEFAULT_LABELS, *policy.labels} - {"tests-failed"}
    return {policy.label(r) for r in roles}


@dataclass(frozen=True)
class Backport:
    """One desired backport PR's facts, before they are rendered."""

    series: Series
    key: str  # the fix's key (its original's SHA)
    source: str  # the commit picked
    source_kind: str
    source_branch: str | None
    head: str  # the branch head to push
    status: PickStatus
    fix: PlannedFix | None  # None: requested by a maintainer, not flagged
    conflicts: tuple[ConflictFile, ...] = ()
    depends: tuple[str, ...] = ()  # keys of the fixes it is stacked on
    requested_by: str | None = None
    prerequisites: tuple[Prerequisite, ...] = ()  # upstream commits picked before the fix
    missing: str = ""  # names its tests missed that a fix it is stacked on defines
    split: Split | None = None  # a conflict outside the code: its code picked, the rest to adapt
    adaptation: Adaptation | None = None  # a conflict a downstream patch resolves


@dataclass(frozen=True)
class PRText:
    title: str
    body: str
    labels: tuple[str, ...]
    marker: Marker


class Presenter:
    """Renders backports as PR titles, bodies, labels and markers, in CPython's conventions."""

    def __init__(
        self, policy: Policy, index: CommitIndex, repo: pygit2.Repository, policy_file: str
    ) -> None:
        self.policy, self.index, self.repo = policy, index, repo
        self.policy_file = policy_file
        self.web = self.policy.upstream.web

    def link(self, sha: str) -> str:
        return f"[`{sha[:10]}`]({self.web}/commit/{sha})" if self.web else f"`{sha[:10]}`"

    def pr_text(self, b: Backport) -> PRText:
        p = self.policy
        s = b.series
        pf = b.fix
        fix = pf.candidate.fix if pf else None
        facts = self.index.facts(b.source)
        subject = (
            fix.subject
            if fix
            else (facts.message.splitlines()[0] if facts and facts.message else b.key)
        )
        security = bool(fix and fix.security)
        labels = {p.label("backport")}
        if security:
            labels.add(p.label("security"))
        if b.split is not None:
            labels.add(p.label("to-adapt"))
        elif b.status == "conflict":
            labels.add(p.label("conflicts"))
        extra = {"pushed": b.head, "status": b.status}
        if b.split is not None:
            extra["to_adapt"] = "1"
        if b.adaptation is not None:
            labels.add(p.label("adapted"))
            extra["downstream"] = f"{b.adaptation.patch.source}: {b.adaptation.patch.name}"
        if fix is not None and fix.follows:
            labels.add(p.label("follow-up"))
        if b.prerequisites:
            labels.add(p.label("prerequisite"))
            extra["prerequisites"] = prerequisites_text([x.sha for x in b.prerequisites])
        # The names its tests missed: those its prerequisites define, and those of the fixes
        # it is stacked on.
        missing = [m for m in (*(x.missing for x in b.prerequisites), b.missing) if m]
        if missing:
            extra["missing"] = ";".join(missing)
        if b.depends:
            extra["depends"] = ",".join(d[:12] for d in b.depends)
        if b.requested_by:
            extra["requested"] = b.requested_by
        marker = Marker("backport", s.name, original=b.key, source=b.source, extra=extra)
        body = render(
            "pr_body.md.j2",
            fix=self._context(b, subject, security),
            series=s.name,
            branch=s.stable_branch,
            policy_file=self.policy_file,
            version=__version__,
            marker=marker.render(),
        )
        title = backport_title(s.stable_branch, subject)
        if b.split is not None:
            title = "[to adapt] " + title
        elif b.status == "conflict":
            title = "[conflict] " + title
        return PRText(title, body, tuple(sorted(labels)), marker)

    def _context(self, b: Backport, subject: str, security: bool) -> dict[str, object]:
        pf = b.fix
        fix = pf.candidate.fix if pf else None
        why = (
            pf.note
            if pf and pf.note
            else f"first source in preference order ({', '.join(b.series.sources)})"
            if pf
            else f"requested by @{b.requested_by}"
        )
        pr_link = ""
        if fix and fix.pr:
            pr_link = f"[GH-{fix.pr}]({self.web}/pull/{fix.pr})" if self.web else f"GH-{fix.pr}"
        return {
            "subject": subject,
            "original_link": self.link(fix.original or fix.key) if fix else self.link(b.key),
            "pr_link": pr_link,
            "source_sha": b.source,
            "source_link": self.link(b.source),
            "source_kind": b.source_kind + (f" on {b.source_branch}" if b.source_branch else ""),
            "why": why,
            "flags": [{"rule": h.rule, "reason": h.reason} for h in fix.flags]
            if fix
            else [{"rule": "requested", "reason": f"/stablectl backport by {b.requested_by}"}],
            "security": security,
            "cves": fix.cves if fix else [],
            "issues": fix.issues if fix else [],
            "requested_by": b.requested_by,
            "depends": [self.link(d) for d in b.depends],
            "needs": [f"{m.describe()} ({m.error})" for m in decode(b.missing)],
            "follows": self.link(fix.follows) if fix and fix.follows else "",
            "prerequisites": [
                {
                    "link": self.link(x.sha),
                    "sha": x.sha,
                    "subject": x.subject,
                    "where": list(x.where),
                    "why": x.why,
                }
                for x in b.prerequisites
            ],
            "conflicts": list(b.conflicts),
            "news": self.news(b.source),
            "status": b.status,
            "to_adapt": list(b.split.describe()) if b.split is not None else [],
            "adapted": _adapted_context(b.adaptation) if b.adaptation is not None else None,
            "to_adapt_tests": bool(b.split is not None and b.split.to_adapt),
        }

    def news(self, sha: str) -> list[dict[str, str]]:
        """The NEWS entries (and files flag rules name) the source writes, for the PR body."""
        facts = self.index.facts(sha)
        if facts is None:
            return []
        globs = [NEWS_GLOB] + [g for r in self.policy.flags for g in (r.paths or [])]
        out = []
        commit = self.repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit)
        for path in facts.written_paths:
            if not any(fnmatch.fnmatchcase(path, g) for g in globs):
                continue
            try:
                blob = commit.tree[path]
            except KeyError:
                continue
            data = bytes(self.repo[blob.id].read_raw())[:4000]
            out.append({"path": path, "text": data.decode("utf-8", "replace").strip()})
        return out[:3]


def reply(c: Comment, kind: str, detail: str) -> Action:
    """stablectl's answer to a maintainer's comment; its marker records that it was answered."""
    marker = Marker("reply", "", extra={"reply": str(c.id)}).render()
    body = render("comment.md.j2", kind=kind, user=c.user, detail=detail, branch="", marker=marker)
    return Action(
        "", f"#{c.number}", f"{kind} to {c.user} (comment {c.id})", PostComment(c.number, body)
    )


def closing_comment(series: str, pr: int, *, kind: str, detail: str, branch: str) -> str:
    """The comment a PR is closed with (why, in words), carrying a `closing` marker."""
    marker = Marker("closing", series, extra={"pr": str(pr), "why": kind}).render()
    return render("comment.md.j2", kind=kind, detail=detail, branch=branch, user="", marker=marker)


def resolved_pr_body(
    sha: str, branch: str, marker: Marker, *, adapted: bool = False, supersedes: int | None = None
) -> str:
    """The body of a backport PR whose conflicts a maintainer resolved by hand."""
    return render(
        "pr_resolved.md.j2",
        sha=sha,
        branch=branch,
        adapted=adapted,
        trailer=ADAPTED_TRAILER,
        supersedes=supersedes,
        marker=marker.render(),
    )


def release_pr_text(
    policy: Policy,
    series: Series,
    *,
    version: str,
    tag: str,
    fixes: list[ShippedFix],
    deadline: dt.datetime,
    marker: Marker,
    direct: Sequence[tuple[str, str]] = (),
) -> tuple[str, str]:
    """The release PR's title and body; `direct` (commit, subject) are the commits on the
    branch that did not come through a merged stablectl PR, listed above the fixes."""
    body = render(
        "release_pr.md.j2",
        direct=direct,
        version=version,
        tag=tag,
        series=series,
        fixes=fixes,
        deadline=deadline.strftime("%Y-%m-%d %H:%M UTC"),
        marker=marker.render(),
        hours=policy.release.review_hours,
    )
    return f"[{series.stable_branch}] Release {version}", body


def conflict_commit_message(
    series: Series, source: str, subject: str, split: Split | None = None
) -> str:
    """The message of a draft conflict PR's commit (the one carrying git's conflict markers;
    of a fix to adapt, in its tests alone, or none where only documentation was left out)."""
    if split is not None:
        return (
            f"[to adapt] {backport_title(series.stable_branch, subject)}\n\n"
            f"The code of {source} picks cleanly onto {series.stable_branch}; outside it:\n"
            + "".join(f"- {line}\n" for line in split.describe()[:-1])
            + "Not upstream's change as it is: DO NOT MERGE.\n"
            f"Resolve with: stablectl backport {source[:12]} --series {series.name}\n"
        )
    return (
        f"[conflict] {backport_title(series.stable_branch, subject)}\n\n"
        f"stablectl could not pick {source} cleanly onto {series.stable_branch}.\n"
        "This commit carries git's conflict markers: DO NOT MERGE.\n"
        f"Resolve with: stablectl backport {source[:12]} --series {series.name}\n"
    )


def _adapted_context(a: Adaptation) -> dict[str, object]:
    """What a downstream adaptation's PR body shows: where it came from, why it is this fix's,
    and its exact interdiff to upstream's change picked onto the line (cut at 300 lines)."""
    lines = a.change.patch.splitlines()
    return {
        "source": a.patch.source,
        "patch": a.patch.name,
        "why": a.why,
        "lines": a.change.lines,
        "digest": a.change.digest,
        "interdiff": "\n".join(lines[:300]),
        "cut": max(0, len(lines) - 300),
    }
