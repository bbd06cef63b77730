"""`stablectl init`: make a fork ready — stable branches at their base tags, the workflows and
the policy on the control branch, the labels. Idempotent: a second run changes nothing.

Where the workflows live: on the control branch (the fork's default branch), in the default
`dispatch` mode: `schedule`, `workflow_dispatch` and `issue_comment` runs always use the
default branch's files. Sync dispatches `stable-tests` for each PR head on a branch of its own,
`ci.tests_branch`, which holds only the workflows: backport code runs in those runs, and
whatever it writes to the Actions cache lands in that branch's scope, never in the control
branch's, whose cache entries the controller restores. The stable branches carry nothing but
upstream code and backports. In `app` mode PRs trigger `pull_request` runs, which read the
workflow from the PR's merge commit: init then also commits `stable-tests.yml` onto each
stable branch, marked with a `Stablectl-Infrastructure: workflows` trailer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from stablectl import __version__
from stablectl.controller.workflows import (
    POLICY_IN_FORK,
    TEST_WORKFLOW,
    WORKFLOW_DIR,
    render_workflows,
)
from stablectl.controller.workspace import Workspace
from stablectl.forge.base import Forge
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.gitops.trees import update_tree
from stablectl.policy import Policy

INFRA_TRAILER = "Stablectl-Infrastructure: workflows"
LABELS = {
    "backport": ("0e8a16", "A backport opened by stablectl"),
    "security": ("b60205", "Fixes a security issue"),
    "conflicts": ("fbca04", "Does not apply cleanly; resolve with stablectl backport"),
    "skip": ("cccccc", "A maintainer decided not to backport this"),
    "tests-failed": ("d93f0b", "The test suite failed on this backport's head"),
    "prerequisite": ("5319e7", "Carries upstream commits the fix needs first"),
    "follow-up": ("c5def5", "Completes an earlier fix upstream (a follow-up commit)"),
}


@dataclass
class InitReport:
    branches: list[str] = field(default_factory=list)
    control: str | None = None
    tests: str | None = None  # the commit the tests branch moved to
    stable_infra: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.branches or self.control or self.tests or self.stable_infra or self.labels)


def commit_files(
    repo: pygit2.Repository,
    parent: str | None,
    *,
    files: dict[str, bytes],
    message: str,
    who: pygit2.Signature,
) -> str | None:
    """A commit on `parent` setting `files`; None when they are already so."""
    base_tree = repo[pygit2.Oid(hex=parent)].peel(pygit2.Commit).tree if parent else None
    changes: dict[str, tuple[pygit2.Oid, int] | None] = {
        path: (repo.create_blob(data), int(pygit2.enums.FileMode.BLOB))
        for path, data in files.items()
    }
    tree = update_tree(repo, base_tree, changes)
    if base_tree is not None and tree == base_tree.id:
        return None
    parents = [pygit2.Oid(hex=parent)] if parent else []
    return str(repo.create_commit(None, who, who, message, tree, parents))


def _stable_tips(
    ws: Workspace, updates: dict[str, RefUpdate], report: InitReport
) -> dict[str, str]:
    """Each series' stable branch tip on the fork; a missing branch is queued at its base tag."""
    tips: dict[str, str] = {}
    for s in ws.policy.series:
        ref = f"refs/heads/{s.stable_branch}"
        tip = ws.cache.fork_branch(s.stable_branch)
        if tip is None:
            base = ws.cache.upstream_tag(s.base)
            if base is None:
                raise KeyError(s.base)
            updates[ref] = RefUpdate(ref, base, None)
            report.branches.append(s.stable_branch)
            tip = base
        tips[s.stable_branch] = tip
    return tips


def _test_workflow_on_stable(
    repo: pygit2.Repository,
    tips: dict[str, str],
    workflow: bytes,
    who: pygit2.Signature,
    updates: dict[str, RefUpdate],
    report: InitReport,
) -> None:
    """`ci.trigger: app`: the test workflow committed onto every stable branch (an
    infrastructure commit), queued."""
    for branch, tip in tips.items():
        infra = commit_files(
            repo,
            tip,
            files={f"{WORKFLOW_DIR}/{TEST_WORKFLOW}": workflow},
            message=f"stablectl: test workflow for {branch}\n\n{INFRA_TRAILER}\n",
            who=who,
        )
        if infra is not None:
            ref = f"refs/heads/{branch}"
            created = updates.get(ref)  # a branch created in this run starts there
            updates[ref] = RefUpdate(ref, infra, created.old if created else tip)
            report.stable_infra.append(branch)


def init_fork(
    ws: Workspace,
    forge: Forge,
    *,
    policy_text: bytes,
    policy_name: str,
    token: str | None,
    dry_run: bool = False,
) -> InitReport:
    policy: Policy = ws.policy
    cache = ws.cache
    repo = cache.repo
    ident = policy.identity
    who = pygit2.Signature(ident.name, ident.email)
    report = InitReport()
    updates: dict[str, RefUpdate] = {}
    tips = _stable_tips(ws, updates, report)
    rendered = render_workflows(policy, policy_name)
    workflows = {r.path: r.text.encode() for r in rendered}
    rendered_by = f"Rendered by stablectl {__version__} from {policy_name}.\n"

    def commit_branch(branch: str, files: dict[str, bytes], title: str) -> str | None:
        """`files` committed onto the fork's `branch` (created when absent), queued."""
        old = cache.fork_branch(branch)
        new = commit_files(repo, old, files=files, message=f"{title}\n\n{rendered_by}", who=who)
        if new is not None:
            updates[f"refs/heads/{branch}"] = RefUpdate(f"refs/heads/{branch}", new, old)
        return new

    report.control = commit_branch(
        policy.ci.control_branch,
        {**workflows, POLICY_IN_FORK: policy_text},
        "stablectl: workflows and policy for the stable mirror",
    )
    if policy.ci.trigger == "dispatch":
        report.tests = commit_branch(
            policy.ci.tests_branch, workflows, "stablectl: workflows for dispatched test runs"
        )
    if policy.ci.trigger == "app":
        test = next(r for r in rendered if r.path.endswith(TEST_WORKFLOW))
        _test_workflow_on_stable(repo, tips, test.text.encode(), who, updates, report)
    labels = {policy.label(role): LABELS[role] for role in LABELS}
    if dry_run:
        report.labels = sorted(labels)
        return report
    ForkPusher(cache.path, policy.fork.git, token).push(list(updates.values()))
    for u in updates.values():
        assert u.new is not None
        cache.set_fork_branch(u.ref.removeprefix("refs/heads/"), u.new)
    report.labels = forge.ensure_labels(labels)
    return report
