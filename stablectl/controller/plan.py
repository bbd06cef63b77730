"""The plan: per series, each flagged fix with its state and the outcome of a chained,
in-memory pick onto the stable tip. Computing it changes nothing on the fork or the forge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from stablectl import __version__
from stablectl.controller.downstream import Adaptation
from stablectl.controller.parts import Split
from stablectl.controller.prerequisites import Prerequisite
from stablectl.controller.selection import (
    Candidate,
    FixState,
    SeriesSelection,
    Source,
    VerdictKind,
)
from stablectl.gitops.pick_result import PickResult
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Series

PLAN_SCHEMA = "stablectl.plan/1"


@dataclass(frozen=True)
class Attempt:
    source: Source
    result: PickResult
    # A clean pick that changes only NEWS entries and documentation on the line: the paths.
    documentation_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedFix:
    candidate: Candidate
    attempts: list[Attempt] = field(default_factory=list)
    chosen: Attempt | None = None
    note: str = ""
    not_applicable: str = ""  # why the fix does not concern the line (see applicability.py)
    applied: str = ""  # why its change is on the line already without a trailer
    evidence: tuple[str, ...] = ()  # what the line's code showed for either verdict
    verdict: VerdictKind | None = None  # the rule behind `not_applicable` or `applied`
    # A follow-up whose fix does not apply yet: planned once that fix is merged.
    waits_for: str = ""
    info: str = ""  # for the person resolving a conflict (applicability.upstream_note)
    # Upstream commits picked under the fix so that it applies (see prerequisites.py), oldest
    # first; with none found, why (the chain of what was tried).
    prerequisites: tuple[Prerequisite, ...] = ()
    prerequisite_report: str = ""
    # A conflict outside the code: picked again with its documentation left out and NEWS
    # added whole; its tests, if they conflict, to adapt (controller/parts.py).
    split: Split | None = None
    # A conflict a downstream adaptation resolves (controller/downstream.py).
    adapted_from: Adaptation | None = None

    @property
    def status(self) -> FixState:
        """The candidate's state, or for a pending fix the outcome of picking it: new-clean,
        new-clean-with-prerequisites, new-empty, new-conflict or new-error."""
        c = self.candidate
        if c.state != FixState.PENDING:
            return c.state
        if self.not_applicable:
            return FixState.NOT_APPLICABLE
        if self.applied:
            return FixState.APPLIED
        if self.waits_for:
            return FixState.WAITING
        if self.adapted_from is not None:
            return FixState.NEW_ADAPTED
        if self.split is not None:
            return FixState.NEW_TO_ADAPT
        if self.chosen is None:
            conflicted = any(a.result.outcome == "conflict" for a in self.attempts)
            return FixState.NEW_CONFLICT if conflicted else FixState.NEW_ERROR
        if self.prerequisites:
            return FixState.NEW_CLEAN_PREREQ
        return FixState(f"new-{self.chosen.result.outcome}")

    @property
    def not_affected(self) -> bool:
        """The line's code does not need the fix: judged not applicable, or a conflict whose
        change the code already has. What status, the release notes and vex.json state."""
        status = self.status
        return status == FixState.NOT_APPLICABLE or (
            status == FixState.APPLIED and bool(self.applied)
        )

    @property
    def why_not_affected(self) -> str:
        return self.not_applicable or self.applied

    @property
    def applies(self) -> bool:
        """A clean pick (with or without prerequisites) that a PR can offer."""
        return self.status in (FixState.NEW_CLEAN, FixState.NEW_CLEAN_PREREQ)

    @property
    def picks(self) -> tuple[str, ...]:
        """The upstream commits its PR picks, in order: prerequisites, then the source."""
        if self.chosen is None:
            return ()
        return (*(p.sha for p in self.prerequisites), self.chosen.source.sha)


@dataclass(frozen=True)
class SeriesPlan:
    selection: SeriesSelection
    fixes: list[PlannedFix]
    final_tip: str  # the in-memory chain's tip after every clean pick

    @property
    def series(self) -> Series:
        return self.selection.series


@dataclass
class Plan:
    project: str
    series: list[SeriesPlan]
    errors: list[str]
    stats: JSONDoc
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def to_json(self) -> JSONDoc:
        return {
            "schema": PLAN_SCHEMA,
            "stablectl": __version__,
            "project": self.project,
            "created": self.created,
            "errors": self.errors,
            "series": [_series_json(sp) for sp in self.series],
            "stats": self.stats,
        }


def _series_json(sp: SeriesPlan) -> JSONDoc:
    sel = sp.selection
    return {
        "name": sel.series.name,
        "branch": sel.series.stable_branch,
        "branch_exists": sel.branch_exists,
        "base": {"tag": sel.series.base, "sha": sel.base_sha},
        "tip": sel.tip_sha,
        "planned_tip": sp.final_tip,
        "errors": sel.errors,
        "fixes": [_fix_json(pf) for pf in sp.fixes],
    }


def _fix_json(pf: PlannedFix) -> JSONDoc:
    c = pf.candidate
    fx = c.fix
    chosen = pf.chosen
    return {
        "key": fx.key,
        "original": fx.original,
        "subject": fx.subject,
        "issues": fx.issues,
        "pr": fx.pr,
        "cves": fx.cves,
        "security": fx.security,
        "follows": fx.follows,
        "flags": [
            {"rule": h.rule, "commit": h.sha, "reason": h.reason, "security": h.security}
            for h in fx.flags
        ],
        "members": fx.members,
        "state": c.state,
        "status": pf.status,
        "reason": c.reason,
        "note": pf.note,
        "not_applicable": pf.not_applicable or None,
        "applied": pf.applied or None,
        "evidence": list(pf.evidence),
        "verdict": pf.verdict,
        "waits_for": pf.waits_for or None,
        "info": pf.info or None,
        "prerequisites": [_prerequisite_json(p) for p in pf.prerequisites],
        "prerequisite_report": pf.prerequisite_report or None,
        "source": None
        if chosen is None
        else {
            "commit": chosen.source.sha,
            "kind": chosen.source.kind,
            "branch": chosen.source.branch,
        },
        "result": None
        if chosen is None
        else {
            "outcome": chosen.result.outcome,
            "commit": chosen.result.commit,
            "tree": chosen.result.tree,
            "lever": chosen.result.lever,
        },
        "attempts": [_attempt_json(a) for a in pf.attempts],
        "to_adapt": None if pf.split is None else _split_json(pf.split),
        "adapted_from": None if pf.adapted_from is None else _adaptation_json(pf.adapted_from),
    }


def _adaptation_json(a: Adaptation) -> JSONDoc:
    return {
        "downstream": a.patch.source,
        "patch": a.patch.name,
        "why": a.why,
        "adapts": a.source,
        "tree": a.tree,
        "interdiff": {"lines": a.change.lines, "sha256": a.change.digest},
    }


def _split_json(sp: Split) -> JSONDoc:
    return {
        "source": sp.source,
        "outcome": sp.result.outcome,
        "commit": sp.result.commit,
        "tests": list(sp.to_adapt),
        "left_out": list(sp.left_out),
        "own_news": list(sp.own_news),
        "parts": list(sp.describe()),
    }


def _prerequisite_json(p: Prerequisite) -> JSONDoc:
    return {
        "commit": p.sha,
        "subject": p.subject,
        "where": list(p.where),
        "why": p.why,
        "context_only": p.context_only,
        "pick": p.commit,
    }


def _attempt_json(a: Attempt) -> JSONDoc:
    return {
        "source": a.source.sha,
        "kind": a.source.kind,
        "branch": a.source.branch,
        "outcome": a.result.outcome,
        "lever": a.result.lever,
        "error": a.result.error,
        "documentation_only": list(a.documentation_only),
        "ms": round(a.result.seconds * 1000, 2),
        "conflicts": [
            {"path": cf.path, "kind": cf.kind, "hunks": cf.hunks} for cf in a.result.conflicts
        ],
    }
