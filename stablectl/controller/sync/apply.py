"""Applying actions: git pushes (fast-forward guarded, each ref checked) and forge calls.

Every action is safe to repeat after a crash: the next run sees what landed and decides again.
Each push and each forge write is a *write point*; `WritePoints` counts them for the report
and tells its observers (the crash tests install one: tests/crash.py, outside the wheel).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from stablectl.controller.sync.actions import (
    Action,
    ClosePR,
    CreateStable,
    DeleteBranch,
    Findings,
    MergePR,
    OpenPR,
    PostComment,
    PublishRelease,
    Push,
    Retest,
    SetLabels,
    SkipPR,
    TagRelease,
    UpdatePR,
)
from stablectl.controller.sync.merging import merge_forward
from stablectl.controller.sync.presentation import closing_comment, own_labels
from stablectl.controller.sync.publishing import publish, push_tag
from stablectl.controller.workflows import ci_request
from stablectl.errors import GitError, StablectlError
from stablectl.forge.base import ConflictError, Forge
from stablectl.gitops.cache import RepoCache
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.policy import Policy


class WritePoints:
    """Counts a run's writes (pushes and forge writes) and calls the observers after each."""

    observers: ClassVar[list[Callable[[int], None]]] = []

    def __init__(self) -> None:
        self.count = 0

    def wrote(self) -> None:
        self.count += 1
        for observe in list(self.observers):
            observe(self.count)


class Applier:
    def __init__(
        self,
        policy: Policy,
        cache: RepoCache,
        forge: Forge,
        *,
        state_dir: Path,
        pusher: ForkPusher,
        findings: Findings,
        writes: WritePoints,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.state_dir = state_dir
        self.forge = forge
        self.pusher = pusher
        self.findings = findings
        self.writes = writes
        self.ci = ci_request(self.policy)

    def apply(self, actions: list[Action]) -> list[Action]:
        """Apply in order; returns those done. Branch updates go first, all in one `git push`
        (each ref checked on its own); a PR is then opened only for a branch that made it."""
        done, failed_refs = self._push_refs(actions)
        for a in actions:
            p = a.payload
            if isinstance(p, CreateStable | Push):
                continue
            if isinstance(p, OpenPR) and p.head in failed_refs:
                continue
            try:
                self._apply_one(a)
            except ConflictError as e:
                if not isinstance(p, MergePR):
                    raise
                # Another merge of this run got there first: the next run re-picks this one
                # onto the new tip (or opens it as a conflict).
                self.findings.notice(f"{a.target} not merged: {e}", routine=True)
                continue
            except (StablectlError, GitError) as e:
                self.findings.problem(f"{a.kind} {a.target}: {e}")
                raise
            done.append(a)
        return done

    def _push_refs(self, actions: list[Action]) -> tuple[list[Action], set[str]]:
        refs: list[tuple[Action, RefUpdate]] = []
        for a in actions:
            if isinstance(a.payload, CreateStable):
                refs.append((a, RefUpdate(f"refs/heads/{a.payload.branch}", a.payload.sha, None)))
            elif isinstance(a.payload, Push):
                p = a.payload
                refs.append((a, RefUpdate(f"refs/heads/{p.ref}", p.new, p.old)))
        done: list[Action] = []
        failed_refs: set[str] = set()
        if not refs:
            return done, failed_refs
        failed = self.pusher.push_each([u for _, u in refs])
        for a, u in refs:
            name = u.ref.removeprefix("refs/heads/")
            if u.ref in failed:
                self.findings.problem(f"{a.kind} {name}: refused by the fork: {failed[u.ref]}")
                failed_refs.add(name)
            else:
                assert u.new is not None
                self.cache.set_fork_branch(name, u.new)
                done.append(a)
        self.writes.wrote()
        return done, failed_refs

    def _apply_one(self, a: Action) -> None:
        f = self.forge
        p = a.payload
        if isinstance(p, DeleteBranch):
            self._delete(p.ref, p.old)
        elif isinstance(p, OpenPR):
            pr = f.open_pr(p.head, p.base, p.title, p.body, draft=p.draft, labels=p.labels)
            if p.test_sha:
                self._request_tests(pr.number, p.test_sha, again=False)
        elif isinstance(p, UpdatePR):
            f.update_pr(p.pr, title=p.title, body=p.body)
            if p.test_sha:
                self._request_tests(p.pr, p.test_sha, again=False)
        elif isinstance(p, SetLabels):
            # Labels sync does not decide (the CI's tests-failed, people's own) are kept as
            # they are now, not as they were when this run started (a /stablectl retest
            # earlier in the run may have cleared one).
            own = own_labels(self.policy)
            now = f.get_pr(p.pr).labels
            f.set_labels(p.pr, sorted({*p.labels, *(lb for lb in now if lb not in own)}))
        elif isinstance(p, PostComment):
            f.comment(p.number, p.body)
        elif isinstance(p, ClosePR):
            stable = self.policy.get_series(a.series).stable_branch if a.series else ""
            body = closing_comment(
                a.series, p.pr, kind=p.comment_kind, detail=p.comment_detail, branch=stable
            )
            f.close_pr(p.pr, comment=body)
            if p.branch:
                self.delete_branch(p.branch)
        elif isinstance(p, SkipPR):
            pr = f.get_pr(p.pr)
            f.set_labels(p.pr, sorted({*pr.labels, self.policy.label("skip")}))
            # The controller's closing comment is the record of the skip: a label and a
            # closed state anyone with write access can set are not.
            why = closing_comment(a.series, p.pr, kind="skipped", detail=p.by, branch=pr.base)
            f.close_pr(p.pr, comment=why)
        elif isinstance(p, Retest):
            self._retest(p)
        elif isinstance(p, MergePR):
            notice = merge_forward(self.policy, f, self.cache, target=a.target, m=p)
            if notice:
                self.findings.notice(notice)
            self.delete_branch(p.branch)
        elif isinstance(p, TagRelease):
            push_tag(self.policy, self.cache, self.pusher, p)
            self.writes.wrote()
        elif isinstance(p, PublishRelease):
            publish(self.policy, f, self.cache, out_dir=self.releases_dir, p=p)

    @property
    def releases_dir(self) -> Path:
        return self.state_dir / "releases" / self.policy.project

    def delete_branch(self, branch: str) -> None:
        """Delete one of stablectl's branches if the fork still has it."""
        old = self.cache.fork_branch(branch)
        if old is not None:
            self._delete(branch, old)

    def _delete(self, branch: str, old: str | None) -> None:
        """Delete `branch`, guarded on its expected head `old`."""
        self.pusher.push([RefUpdate(f"refs/heads/{branch}", None, old)])
        self.cache.set_fork_branch(branch, None)
        self.writes.wrote()

    def _request_tests(self, number: int, sha: str, *, again: bool) -> None:
        try:
            self.forge.request_tests(number, sha, self.ci, again=again)
        except StablectlError as e:
            self.findings.problem(str(e))

    def _retest(self, p: Retest) -> None:
        failed = self.policy.label("tests-failed")
        pr = self.forge.get_pr(p.pr)
        if failed in pr.labels:
            self.forge.set_labels(p.pr, [lb for lb in pr.labels if lb != failed])
        self._request_tests(p.pr, p.sha, again=True)
