"""The approval gate: may this backport PR be merged now?

Approvals count only from policy maintainers (logins compared case-insensitively, as GitHub
does), only the latest review of each counts, only when given on the PR's current head (a push
after approval makes it stale), never the PR author's own; any maintainer's outstanding change
request blocks; every required check (names or globs) must have run on the head and passed,
reported by its CI identity, with no failure reported by anyone (`identities.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stablectl.controller.identities import required_checks
from stablectl.forge.base import Forge, PullRequest, Review
from stablectl.policy import Policy, login_key


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str
    approvers: tuple[str, ...] = ()


def approvers_of(policy: Policy, pr: PullRequest, reviews: list[Review]) -> list[str]:
    """Maintainers whose latest review approves the PR's current head (never its author)."""
    latest: dict[str, Review] = {}
    for r in reviews:
        if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login_key(r.user)] = r
    return sorted(
        u
        for u, r in latest.items()
        if r.state == "APPROVED"
        and policy.is_maintainer(u)
        and u != login_key(pr.author)
        and r.commit == pr.head_sha
    )


def evaluate_gate(policy: Policy, forge: Forge, pr: PullRequest) -> GateResult:
    """Backport and release PRs alike: approvals and the required checks on the head."""
    latest: dict[str, Review] = {}
    for r in forge.reviews(pr.number):
        if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login_key(r.user)] = r
    blockers = sorted(
        u for u, r in latest.items() if r.state == "CHANGES_REQUESTED" and policy.is_maintainer(u)
    )
    if blockers:
        return GateResult(False, f"changes requested by {', '.join(blockers)}")
    approvers = approvers_of(policy, pr, list(latest.values()))
    stale = sorted(
        u
        for u, r in latest.items()
        if r.state == "APPROVED" and policy.is_maintainer(u) and r.commit != pr.head_sha
    )
    need = policy.approvals.required
    if len(approvers) < need:
        extra = f" (stale after a push: {', '.join(stale)})" if stale else ""
        return GateResult(
            False,
            f"{len(approvers)}/{need} maintainer approvals on {pr.head_sha[:10]}{extra}",
            tuple(approvers),
        )
    required = policy.checks.required
    found_checks = forge.checks(pr.head_sha) if required else []
    for outcome in required_checks(policy, found_checks):
        if outcome.state != "passed":
            reason = outcome.reason
            if outcome.state == "missing":
                reason = reason.replace("has not run", f"has not run on {pr.head_sha[:10]}")
            return GateResult(False, reason, tuple(approvers))
    checks_text = "checks green" if required else "no required checks"
    return GateResult(
        True,
        f"approved by {', '.join(approvers) or 'nobody needed'}; {checks_text}",
        tuple(approvers),
    )
