"""Merging: which backport PRs may merge now (clean, wanted, approved, green), and the merge
itself, which must only move the stable branch forward."""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from stablectl.controller.gate import evaluate_gate
from stablectl.controller.plan import Plan
from stablectl.controller.provenance_gates import explain_head, merge_blockers
from stablectl.controller.sync.actions import Action, Findings, MergePR
from stablectl.controller.sync.desired import Wanted
from stablectl.controller.workspace import Workspace
from stablectl.errors import GitError
from stablectl.forge.base import Forge, MergeMethod, PullRequest
from stablectl.gitops.cache import RepoCache
from stablectl.gitops.messages import Adapted
from stablectl.policy import Policy, Series


def mergeable(
    ws: Workspace,
    forge: Forge,
    plan: Plan,
    *,
    wanted: Sequence[Wanted],
    mine: Sequence[PullRequest],
    findings: Findings,
) -> list[Action]:
    """Merge actions for open, clean, approved and green PRs whose commits `verify` accepts
    (the forge rebases each onto the tip the previous merge left; one that no longer applies
    is reported, not forced)."""
    policy = ws.policy
    out: list[Action] = []
    wanted_keys = {(w.series.name, w.key) for w in wanted}
    for sp in plan.series:
        s = sp.series
        if not sp.selection.branch_exists:
            continue
        candidates = [
            p
            for p in mine
            if p.state == "open"
            and p.marker
            and p.marker.series == s.name
            and not p.draft
            and p.base == s.stable_branch
            and p.marker.extra.get("status") == "clean"
            and not p.marker.extra.get("depends")  # merged after what it is stacked on
            and (s.name, p.marker.original) in wanted_keys
        ]
        if not candidates:
            continue
        approved = forge.approved_prs(s.stable_branch)
        for pr in candidates:
            if pr.number not in approved:
                continue
            res = evaluate_gate(policy, forge, pr)
            if not res.ok:
                findings.notice(f"{s.name}: PR #{pr.number} not merged: {res.reason}", routine=True)
                continue
            blockers = merge_blockers(ws, policy, s, forge, pr.head_sha)
            if blockers:
                findings.notice(
                    f"{s.name}: PR #{pr.number} not merged: stablectl verify would reject it: "
                    + "; ".join(blockers)
                    + _record_hint(ws, s, pr)
                )
                continue
            detail = f"{res.reason}; {policy.release.merge_method}"
            out.append(merge_action(s.name, s.stable_branch, pr, detail))
    return out


def _record_hint(ws: Workspace, s: Series, pr: PullRequest) -> str:
    """The exact trailer a hand-made resolution needs, when that is what is missing."""
    m = pr.marker
    if m is None or not m.source:
        return ""
    try:
        r = explain_head(ws, ws.policy, s, pr.head_sha, m.source)
    except (KeyError, ValueError, pygit2.GitError):
        return ""
    if r.source is None or r.verbatim:
        return ""
    rec = Adapted(r.source, r.change.lines, pr.number, r.change.digest)
    return (
        f". If the difference is the reviewed resolution, record it: add the trailer line "
        f"`{rec.trailer()}` to the commit message (or resolve with `stablectl backport "
        "--continue`), push, and approve again"
    )


def merge_action(
    series: str, stable: str, pr: PullRequest, detail: str, method: MergeMethod | None = None
) -> Action:
    return Action(
        series, f"#{pr.number}", detail, MergePR(pr.number, pr.head_sha, pr.head, stable, method)
    )


def merge_forward(
    policy: Policy, forge: Forge, cache: RepoCache, *, target: str, m: MergePR
) -> str | None:
    """Merge through the forge, then check on the fetched fork that the stable branch only
    moved forward (raises GitError otherwise). Returns a notice if the fork shows another tip
    than the forge answered."""
    before = cache.fork_branch(m.stable)
    new = forge.merge(m.pr, m.head, m.method or policy.release.merge_method)
    cache.fetch_fork(policy.fork.git)
    after = cache.fork_branch(m.stable)
    if (
        before
        and after
        and after != before
        and not cache.repo.descendant_of(pygit2.Oid(hex=after), pygit2.Oid(hex=before))
    ):
        raise GitError(
            f"{m.stable} did not move forward when merging {target} "
            f"({before[:10]} → {after[:10]}): stop and inspect the fork"
        )
    if after != new:
        return f"{target}: merged as {new[:10]}, fork shows {after}"
    return None
