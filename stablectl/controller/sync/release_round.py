"""Releases, decided then applied in three stages per series (each stage sees what the one
before changed on the fork):

1. a release PR that was reviewed, approved and is past its review deadline is merged;
2. the newest release commit gets its tag (once; never moved) and its published artifacts;
3. unreleased fixes get a release PR (or its update) when the trigger says so.

Each `decide_*` function reads the fork and the forge and returns actions; `ReleaseRound`
hands them to the applier between stages. A dry run decides stage 1 and stops where a merge
would change what the next stages see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pygit2

from stablectl.controller import release_history as rel
from stablectl.controller.gate import evaluate_gate
from stablectl.controller.plan import Plan, SeriesPlan
from stablectl.controller.release_key import (
    policy_trust,
    release_key,
    review_deadline,
    sign_window,
)
from stablectl.controller.selection import FixState
from stablectl.controller.sync.actions import (
    Action,
    DeleteBranch,
    Findings,
    OpenPR,
    PublishRelease,
    Push,
    TagRelease,
    UpdatePR,
)
from stablectl.controller.sync.merging import merge_action
from stablectl.controller.sync.presentation import release_pr_text
from stablectl.controller.sync.publishing import core_assets
from stablectl.controller.sync.reconcile import skipped_fixes
from stablectl.controller.sync.release_guards import ReleaseGuards
from stablectl.controller.verify.tags import tag_message_problems
from stablectl.controller.workspace import Workspace
from stablectl.errors import GitError, StablectlError
from stablectl.forge.base import Forge, Marker, PullRequest
from stablectl.gitops.cache import UPSTREAM_TAGS
from stablectl.policy import Policy, Series

Apply = Callable[[list[Action]], list[Action]]


class ReleaseRound(ReleaseGuards):
    def __init__(
        self,
        ws: Workspace,
        forge: Forge,
        findings: Findings,
        *,
        now: Callable[[], dt.datetime],
        requested: set[str],
        skips: frozenset[int] = frozenset(),
    ) -> None:
        self.ws = ws
        self.policy: Policy = ws.policy
        self.forge = forge
        self.findings = findings
        self.now = now  # read at each decision: this run's merges move the stable tip
        self.requested = requested  # series asked to release now (manual)
        self.skips = skips  # closed PRs the controller closed as skipped (identities)

    def run(self, plan: Plan, prs: list[PullRequest], apply: Apply | None) -> list[Action]:
        """All series; `apply=None` is a dry run. Returns the actions decided."""
        out: list[Action] = []
        for sp in plan.series:
            if not sp.selection.branch_exists:
                continue
            try:
                out += self._series(sp, prs, apply)
            except StablectlError as e:
                self.findings.problem(f"{sp.series.name}: release: {e}")
        return out

    def _series(self, sp: SeriesPlan, prs: list[PullRequest], apply: Apply | None) -> list[Action]:
        s = sp.series
        rpr = release_pr(prs, s.name)
        out = self.decide_merge(sp, rpr)
        if out:
            if apply is None:
                return out
            apply(out)
            rpr = None
        tip = self.ws.cache.fork_branch(s.stable_branch)
        if tip is None:
            return out
        sr = rel.scan_series(self.ws.cache.repo, sp, tip)
        publishing = self.decide_publish(sp, sr, dry_run=apply is None)
        out += publishing
        if apply is not None and publishing:
            apply(publishing)
        skipped = skipped_fixes(prs, self.policy.label("skip"), skips=self.skips)
        pending = half_fixes(sp, sr, skipped=skipped)
        proposing = self.decide_proposal(s, sr, tip, rpr, pending=pending)
        out += proposing
        if apply is not None and proposing:
            apply(proposing)
        return out

    # ------------------------------------------------------------------ 1. merge

    def decide_merge(self, sp: SeriesPlan, rpr: PullRequest | None) -> list[Action]:
        """A reviewed release PR past its deadline, approved and still as proposed: merge."""
        s = sp.series
        if rpr is None or rpr.marker is None:
            return []
        extra = rpr.marker.extra
        deadline, untrusted = review_deadline(policy_trust(self.policy), extra, s.name)
        if deadline is None:
            self.findings.problem(f"{s.name}: release PR #{rpr.number} not merged: {untrusted}")
            return []
        # Only as reviewed: stablectl's head, on the stable tip it was proposed on (fixes
        # merged since make it a different release, re-proposed in stage 3), and exactly the
        # release commit stablectl builds on that tip (the marker is text in a PR body; the
        # head is recomputed).
        tip = self.ws.cache.fork_branch(s.stable_branch)
        ours = extra.get("pushed") == rpr.head_sha and extra.get("onto") == tip
        if not ours or tip is None:
            return []
        if rpr.head_sha != self._expected_release(sp, tip):
            self.findings.problem(
                f"{s.name}: release PR #{rpr.number} not merged: its head {rpr.head_sha[:10]} "
                f"is not the release commit stablectl builds on {tip[:10]} (pushed by hand?)"
            )
            return []
        if self.now() < deadline:
            self.findings.notice(
                f"{s.name}: release PR #{rpr.number} is under review "
                f"until {deadline:%Y-%m-%d %H:%M} UTC"
            )
            return []
        if rpr.number not in self.forge.approved_prs(s.stable_branch):
            return []
        # The release is the tested unit: its head is the exact commit that will be tagged,
        # the test workflow ran on it, and it merges by fast-forward, so the tag points at a
        # commit CI saw (whatever `merge_method` the backports use).
        res = evaluate_gate(self.policy, self.forge, rpr)
        if not res.ok:
            self.findings.notice(f"{s.name}: release PR #{rpr.number}: {res.reason}")
            return []
        try:  # never merge what could then not be tagged and signed as the policy requires
            release_key(self.policy, f"merging release PR #{rpr.number}")
        except GitError as e:
            self.findings.problem(f"{s.name}: release held: {e}")
            return []
        detail = f"release {extra.get('version')}: {res.reason}; fast-forward"
        return [merge_action(s.name, s.stable_branch, rpr, detail, "fast-forward")]

    # ------------------------------------------------------------------ 2. tag and publish

    def decide_publish(
        self, sp: SeriesPlan, sr: rel.SeriesReleases, *, dry_run: bool
    ) -> list[Action]:
        """The newest release commit has its tag, artifacts and forge release."""
        if not sr.releases:
            return []
        p, s = self.policy, sp.series
        rc = sr.releases[-1]
        tag = rel.tag_of(p, s, len(sr.releases))
        cache = self.ws.cache
        have = cache.peel(f"refs/fork-tags/{tag}")
        if have is not None and have != rc.commit:
            raise GitError(
                f"tag {tag} exists at {have[:10]}, not at the release commit "
                f"{rc.commit[:10]}; tags are never moved: inspect the fork"
            )
        out: list[Action] = []
        if have is None:
            self._never_reused(tag, rc.commit)
            self._through_release_pr(s, rc, len(sr.releases))
            self._verifiable(s)
            n = len(sr.releases)
            prev_tag = rel.tag_of(p, s, n - 1) if n > 1 else s.base
            prev_ref = f"refs/fork-tags/{prev_tag}" if n > 1 else f"{UPSTREAM_TAGS}{s.base}"
            prev_object = cache.resolve(prev_ref)
            if prev_object is None:
                raise GitError(f"cannot tag {tag}: the previous release's tag {prev_tag} is gone")
            message = rel.tag_message(
                p, s, version=rc.version, commit=rc.commit, previous=(prev_tag, prev_object)
            )
            problems = tag_message_problems(
                message,
                version=rel.version_of(p, s, n),
                commit=rc.commit,
                previous=f"{prev_tag} {prev_object}",
            )
            if problems:
                raise GitError(f"release held: {tag} would not verify: " + "; ".join(problems))
            out.append(
                Action(s.name, tag, f"on {rc.commit[:10]}", TagRelease(tag, rc.commit, message))
            )
            if dry_run:
                return out
        release = self.forge.get_release(tag)
        names = {a.name for a in release.assets} if release else set()
        if release is not None and core_assets(p, rc.version) <= names:
            return out  # published (building CPython's tarballs again would cost seconds)
        if have is not None:
            # A tag already on the fork (this mirror's, from an interrupted run, or anyone's):
            # nothing is built or signed from it unless it is what sync itself would tag.
            self._existing_tag(s, tag, rc, len(sr.releases))
        detail = "publish" + ("" if release else ", new release")
        out.append(Action(s.name, tag, detail, PublishRelease(tag, sp, rc, release)))
        return out

    # ------------------------------------------------------------------ 3. propose

    def decide_proposal(
        self,
        s: Series,
        sr: rel.SeriesReleases,
        tip: str,
        rpr: PullRequest | None,
        pending: Sequence[str] = (),
    ) -> list[Action]:
        """Unreleased fixes: propose the next release (or update its PR) when the trigger
        says so; a merged release PR's leftover branch is deleted. `pending` names the
        follow-ups of unreleased fixes not merged yet: a release waits for them."""
        p = self.policy
        cache = self.ws.cache
        repo = cache.repo
        branch = f"stablectl/release/{s.name}"
        out: list[Action] = []
        leftover = cache.fork_branch(branch) if rpr is None else None
        if leftover is not None and not sr.unreleased:
            # The branch of a merged (or closed) release PR, left by an interrupted run.
            out.append(Action(s.name, branch, "release merged", DeleteBranch(branch, leftover)))
        if not sr.unreleased or not self._wanted(s, sr, tip, rpr, pending):
            return out
        version = rel.version_of(p, s, sr.next_n)
        tag = rel.tag_of(p, s, sr.next_n)
        head = rel.release_commit(repo, p, s, tip=tip, version=version, fixes=sr.unreleased)
        if rpr is not None and rpr.head_sha == head:
            assert rpr.marker is not None
            trust = policy_trust(p)
            deadline, _untrusted = review_deadline(trust, rpr.marker.extra, s.name)
            if deadline is not None:
                return out + self._restored(s, rpr, sr, deadline, version=version, tag=tag)
            # A window nobody can vouch for (edited, or from before windows were signed):
            # proposed again with a new, signed one; the review starts over.
        self._never_reused(tag, None)
        direct = self._unreleased(sr, s, self._verifiable(s))
        return [
            *out,
            *self._release_pr(
                s,
                rpr,
                tip=tip,
                head=head,
                version=version,
                tag=tag,
                fixes=sr.unreleased,
                direct=direct,
            ),
        ]

    def _restored(
        self,
        s: Series,
        rpr: PullRequest,
        sr: rel.SeriesReleases,
        deadline: dt.datetime,
        *,
        version: str,
        tag: str,
    ) -> list[Action]:
        """The release PR's title and body as stablectl wrote them: anyone with write access
        can edit them (drop the list of commits pushed straight, say), so each run puts them
        back. Its marker's values are reused only where the release key vouches for them."""
        m = rpr.marker
        assert m is not None
        direct = self._unreleased(sr, s, self._verifiable(s))
        title, body = release_pr_text(
            self.policy,
            s,
            version=version,
            tag=tag,
            fixes=sr.unreleased,
            deadline=deadline,
            marker=Marker("release", s.name, extra=dict(m.extra)),
            direct=direct,
        )
        if (title, body) == (rpr.title, rpr.body):
            return []
        update = UpdatePR(rpr.number, title, body)
        return [Action(s.name, f"#{rpr.number}", "release PR text restored", update)]

    def _release_pr(
        self,
        s: Series,
        rpr: PullRequest | None,
        *,
        tip: str,
        head: str,
        version: str,
        tag: str,
        fixes: list[rel.ShippedFix],
        direct: Sequence[tuple[str, str]] = (),
    ) -> list[Action]:
        """The release commit pushed to the release branch, and its PR opened or updated
        (its review deadline and what it will tag in its marker)."""
        p = self.policy
        branch = f"stablectl/release/{s.name}"
        deadline = (self.now() + dt.timedelta(hours=p.release.review_hours)).replace(microsecond=0)
        extra = {
            "version": version,
            "tag": tag,
            "pushed": head,
            "onto": tip,
            "deadline": deadline.isoformat(),
        }
        # The window is signed with the release key: a writer who edits the PR body (its
        # deadline, its head) makes the signature fail and the release waits.
        window = sign_window(p, extra, s.name)
        if window is None and policy_trust(p).pinned:
            raise GitError(
                f"release {version} not proposed: its review window must be signed with the "
                "release key, and STABLECTL_SIGNING_KEY names none"
            )
        if window is not None:
            extra["window"] = window
        marker = Marker("release", s.name, extra=extra)
        title, body = release_pr_text(
            p,
            s,
            version=version,
            tag=tag,
            fixes=fixes,
            deadline=deadline,
            marker=marker,
            direct=direct,
        )
        old = self.ws.cache.fork_branch(branch)
        out = [Action(s.name, branch, f"release commit {head[:10]}", Push(branch, head, old))]
        if rpr is not None:
            update = UpdatePR(rpr.number, title, body, test_sha=head)
            out.append(Action(s.name, f"#{rpr.number}", f"release {version}: new fixes", update))
        else:
            open_ = OpenPR(
                head=branch,
                base=s.stable_branch,
                title=title,
                body=body,
                draft=False,
                labels=("release",),
                test_sha=head,
            )
            out.append(Action(s.name, branch, title, open_))
        return out

    def _wanted(
        self,
        s: Series,
        sr: rel.SeriesReleases,
        tip: str,
        rpr: PullRequest | None,
        pending: Sequence[str],
    ) -> bool:
        """An open release PR, a maintainer's request, or (trigger `security`) unreleased
        security fixes, none of them waiting for a follow-up, and a stable branch quiet for
        the policy's period."""
        p = self.policy
        if rpr is not None or s.name in self.requested:
            return True
        if p.release.trigger != "security" or not rel.unreleased_security(sr):
            return False
        if pending:
            self.findings.notice(
                f"{s.name}: release waits for follow-ups of unreleased fixes: "
                + "; ".join(pending)
                + " (merge or `/stablectl skip` them; `/stablectl release` releases now)"
            )
            return False
        quiet = dt.timedelta(hours=p.release.quiet_period_hours)
        commit = self.ws.cache.repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit)
        if self.now() - dt.datetime.fromtimestamp(commit.commit_time, dt.UTC) >= quiet:
            return True
        self.findings.notice(f"{s.name}: release waits for the quiet period")
        return False


def half_fixes(sp: SeriesPlan, sr: rel.SeriesReleases, *, skipped: set[str]) -> list[str]:
    """Follow-ups of unreleased fixes that the line still wants and does not have (and a
    maintainer did not skip): releasing without them would ship half a fix. Each as
    "FOLLOW-UP 'subject' (follows FIX)"."""
    unreleased = {x for f in sr.unreleased for x in (f.original, f.source) if x}
    out = []
    for pf in sp.fixes:
        fix = pf.candidate.fix
        parents = [k for k in fix.follows_all if k in unreleased]
        if not parents or fix.key[:12] in skipped:
            continue
        if fix.key in unreleased:  # merged in this run, after the plan was made
            continue
        if pf.candidate.state != FixState.PENDING or pf.status.done:
            continue
        if pf.status == FixState.NOT_APPLICABLE:
            continue
        out.append(f"{fix.key[:10]} {fix.subject!r} (follows {', '.join(k[:10] for k in parents)})")
    return out


def release_pr(prs: Sequence[PullRequest], series: str) -> PullRequest | None:
    """The open release PR of `series`, if any."""
    return next(
        (
            x
            for x in prs
            if x.state == "open"
            and x.marker is not None
            and x.marker.kind == "release"
            and x.marker.series == series
        ),
        None,
    )
