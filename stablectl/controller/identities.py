"""Who wrote it: everything read from the forge counts only from the identity allowed to make
it (the policy's `identities` and `maintainers`).

- a PR is stablectl's (its marker read, its state acted on) only when the controller or a
  maintainer opened it (`stablectl backport` opens one as the maintainer who runs it);
- a required check passes only on a result from its CI identity; a failure from anyone
  blocks, a pending or passing result from anyone else is not evidence;
- a release PR counts as merged only when the controller merged it;
- a marker in a comment counts only in the controller's comments (a CI marker: the CI's).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pygit2

from stablectl.forge.base import CheckState, Comment, Forge, Marker, PullRequest
from stablectl.gitops.messages import parse_message
from stablectl.gitops.objects import find_commit
from stablectl.policy import Policy


def trusted_author(policy: Policy, login: str | None) -> bool:
    """The controller, or a maintainer."""
    if not login:
        return False
    return policy.is_controller(login) or policy.is_maintainer(login)


def branch_key(branch: str) -> str | None:
    """The fix-key prefix a stablectl branch names (None for another branch)."""
    parts = branch.split("/")
    ok = len(parts) == 3 and parts[0] == "stablectl" and len(parts[2]) == 12
    return parts[2] if ok and all(c in "0123456789abcdef" for c in parts[2]) else None


_COULD_NOT_PICK = re.compile(r"^stablectl could not pick ([0-9a-f]{40}) cleanly", re.M)


def backports(repo: pygit2.Repository, forge: Forge, pull: PullRequest, source: str) -> bool:
    """Whether PR `pull` is the backport of upstream commit `source`, from facts a writer
    cannot edit: the commits the forge recorded for it (their `(cherry picked from commit X)`
    trailers, or a draft conflict commit's "could not pick X") and its head branch
    (`stablectl/<series>/<key[:12]>`), against `source` and the commits `source` was picked
    from (a maintenance-branch backport names the original). Never its body."""
    messages = [message for _sha, message in forge.pr_commits(pull.number)]
    named = {x for m in messages for x in parse_message(m).cherry_picked_from}
    named |= {x for m in messages for x in _COULD_NOT_PICK.findall(m)}
    ids = {source}
    found = find_commit(repo, source)
    if found is not None:
        ids |= set(parse_message(found.message).cherry_picked_from)
    key = branch_key(pull.head)
    return bool(ids & named) or bool(key and any(x.startswith(key) for x in ids))


def stablectl_prs(
    policy: Policy, forge: Forge, state: Literal["open", "all"] = "open"
) -> list[PullRequest]:
    """The PRs carrying stablectl's marker that the controller or a maintainer opened; a
    marker in anyone else's PR is text."""
    return [p for p in forge.list_prs(state) if trusted_author(policy, p.author)]


def merged_by_controller(policy: Policy, forge: Forge, pr: PullRequest, branch: str) -> bool:
    """PR `pr` merged into `branch` by the controller itself (the forge's record; GitHub's PR
    list has no `merged_by`, so the PR is read again where it lacks one)."""
    if pr.state != "merged" or pr.base != branch:
        return False
    if pr.merged_by is None:
        pr = forge.get_pr(pr.number)
    return policy.is_controller(pr.merged_by)


def own_comment(policy: Policy, c: Comment) -> bool:
    """A comment the controller wrote and nobody edited since (where its reply and closing
    markers count)."""
    return policy.is_controller(c.user) and not c.edited


def ci_comment(policy: Policy, c: Comment) -> bool:
    """A comment a CI identity wrote and nobody edited since (where `tests-failed` markers
    and evidence count)."""
    return policy.is_ci(c.user) and not c.edited


def recorded_skips(
    policy: Policy, forge: Forge, prs: Sequence[PullRequest], skip_label: str
) -> frozenset[int]:
    """Of the closed PRs carrying the skip label, those the controller closed as skipped (its
    own, unedited closing comment says so): a label and a closed state are anyone's to set,
    and a fix must never be dropped on a writer's word. One request per such PR."""
    out = set()
    for p in prs:
        if p.state != "closed" or skip_label not in p.labels:
            continue
        for c in forge.pr_comments(p.number):
            m = Marker.parse(c.body) if own_comment(policy, c) else None
            if (
                m is not None
                and m.kind == "closing"
                and m.extra.get("why") == "skipped"
                and m.extra.get("pr") == str(p.number)
            ):
                out.add(p.number)
                break
    return frozenset(out)


@dataclass(frozen=True)
class CheckOutcome:
    """What the results on a commit say of one required check (name or glob)."""

    pattern: str
    state: Literal["passed", "failed", "running", "missing"]
    reason: str


def required_check(policy: Policy, pattern: str, checks: Sequence[CheckState]) -> CheckOutcome:
    """A required check passes when every check of that name from its CI identities has
    passed (at least one must have run) and nobody reported it failed: a failure counts from
    anyone (it can only hold a merge back), a success only from the CI."""
    named = [c for c in checks if fnmatch.fnmatchcase(c.name, pattern)]
    failed = [c for c in named if c.failed]
    if failed:
        who = ", ".join(sorted({f"{c.name} (by {c.source or 'unknown'})" for c in failed}))
        return CheckOutcome(pattern, "failed", f"required check failed: {who}")
    trusted = [c for c in named if policy.is_ci(c.source, c.name)]
    if not trusted:
        others = sorted({c.source or "unknown" for c in named})
        extra = f" (reported only by {', '.join(others)}, not a CI identity)" if others else ""
        return CheckOutcome(pattern, "missing", f"required check {pattern!r} has not run{extra}")
    running = [c.name for c in trusted if not c.ok]
    if running:
        return CheckOutcome(
            pattern, "running", f"required check not finished: {', '.join(sorted(running))}"
        )
    return CheckOutcome(pattern, "passed", "passed")


def required_checks(policy: Policy, checks: Sequence[CheckState]) -> list[CheckOutcome]:
    return [required_check(policy, p, checks) for p in policy.checks.required]


def ci_checks(policy: Policy, checks: Sequence[CheckState]) -> list[CheckState]:
    """The results a CI identity reported (what a manifest may name as tested)."""
    return [c for c in checks if policy.is_ci(c.source, c.name)]
