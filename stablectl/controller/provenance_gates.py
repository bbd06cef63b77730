"""Sync's two provenance gates, beside the approval gate (`gate.py`): sync merges no PR and
releases no branch that `stablectl verify` would reject, so nothing reaches the stable branch
or a signed tag that a downstream's check refuses."""

from __future__ import annotations

import pygit2

from stablectl.controller.verify import Audit, audit_series
from stablectl.controller.verify.commits import audit_commits
from stablectl.controller.workspace import Workspace
from stablectl.forge.base import Forge
from stablectl.gitops.objects import find_commit
from stablectl.gitops.provenance import Reproduction
from stablectl.policy import Policy, Series


def release_blockers(ws: Workspace, policy: Policy, series: Series, forge: Forge) -> list[str]:
    """What `verify` would reject on the stable branch's commits (a mirror-only change, a
    forged trailer, an unapproved adaptation, a merge, an excluded change, infrastructure
    stablectl did not render): sync neither proposes nor tags a release on top of it."""
    return release_audit(ws, policy, series, forge)[0]


def release_audit(
    ws: Workspace, policy: Policy, series: Series, forge: Forge
) -> tuple[list[str], list[str]]:
    """verify's errors on the stable branch, and the commits on it that did not come through
    a merged stablectl PR (pushed straight: the release PR lists them for review)."""
    a = Audit(ws, policy, forge=forge, require_reviewed=True)
    audit = audit_series(a, series, {}, tags=False)
    return a.report.errors(), list(audit.direct)


def merge_blockers(
    ws: Workspace, policy: Policy, series: Series, forge: Forge, head: str
) -> list[str]:
    """What verify would reject among the commits a PR would bring onto the stable branch (an
    unrecorded or changed adaptation, one approved for another fix or at another interdiff, a
    trailer naming nothing upstream has)."""
    cache = ws.cache
    tip = cache.fork_branch(series.stable_branch)
    head_commit = find_commit(cache.repo, head)
    if head_commit is None:
        return [f"{head[:10]} is not in the cache (fetch the fork)"]
    a = Audit(ws, policy, forge=forge, require_reviewed=True, merging=True)
    audit_commits(a, series, cache.upstream_tag(series.base), head_commit.id, tip)
    return a.report.errors()


def explain_head(
    ws: Workspace, policy: Policy, series: Series, head: str, source: str
) -> Reproduction:
    """What a PR's head is, as verify would see it (for the hint that records a resolution)."""
    a = Audit(ws, policy)
    try:
        pygit2.Oid(hex=head)
    except ValueError:
        return Reproduction(head)
    return a.provenance(series).explain(head, source=source)
