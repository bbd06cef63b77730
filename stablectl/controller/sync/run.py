"""One sync run: view → desired → reconcile → apply → merge → release → report.

Nothing is remembered between runs. The picture is rebuilt each time from git (upstream, the
fork's branches) and the forge (PRs carrying stablectl's marker, comments, reviews, checks).
Picks are deterministic (same inputs, same SHA), PR bodies carry no timestamps, and opening a
PR for a head that already has one returns that PR: a second run finds nothing to do, and two
runs at once converge on the same branches and PRs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stablectl.controller.identities import recorded_skips, stablectl_prs
from stablectl.controller.plan import Plan, SeriesPlan
from stablectl.controller.release_key import policy_trust
from stablectl.controller.sync.actions import (
    Action,
    CreateStable,
    Findings,
    PRView,
    SkipPR,
    SyncReport,
)
from stablectl.controller.sync.apply import Applier, WritePoints
from stablectl.controller.sync.desired import DesiredState, Wanted
from stablectl.controller.sync.maintainer import Requests, read_commands
from stablectl.controller.sync.merging import mergeable
from stablectl.controller.sync.presentation import Presenter, own_labels
from stablectl.controller.sync.reconcile import SeriesView, reconcile
from stablectl.controller.sync.release_round import ReleaseRound
from stablectl.controller.workspace import Workspace
from stablectl.errors import StablectlError
from stablectl.forge.base import Forge, PullRequest
from stablectl.gitops.objects import find_commit
from stablectl.gitops.push import ForkPusher
from stablectl.policy import Policy


@contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Runs sharing a state directory (one machine) take turns: they share the cache and,
    with the local forge, the forge itself. Runs on different machines need no lock."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "sync.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Syncer:
    def __init__(
        self,
        ws: Workspace,
        forge: Forge,
        *,
        policy_file: str,
        token: str | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.ws = ws
        self.forge = forge
        if ws.forge is None:
            ws.forge = forge  # label rules read the upstream PRs' labels through it
        self.policy: Policy = ws.policy
        self.pusher = ForkPusher(ws.cache.path, self.policy.fork.git, token)
        self.now = now
        self.findings = Findings()
        self.writes = WritePoints()
        forge.stats.after_write = self.writes.wrote
        # Only the file name goes into PR bodies: a body must not change with the directory
        # sync runs from (that would rewrite every conflict PR).
        self.policy_name = os.path.basename(policy_file)
        self.release_requests: set[str] = set()  # series asked to release now (manual)

    def run(
        self, *, dry_run: bool = False, series: list[str] | None = None, fetch: bool = True
    ) -> SyncReport:
        with state_lock(self.ws.state_dir):
            return self._run(dry_run=dry_run, series=series, fetch=fetch)

    def _run(self, *, dry_run: bool, series: list[str] | None, fetch: bool) -> SyncReport:
        if fetch:
            self.ws.fetch()
        self._collaborators()
        for note in self.ws.state_notes:
            self.findings.notice(note)
        prs = stablectl_prs(self.policy, self.forge, "all")
        mine = [p for p in prs if p.marker is not None and p.marker.kind == "backport"]
        since = self.now() - dt.timedelta(days=self.policy.commands.lookback_days)
        requests = read_commands(self.policy, self.forge.comments_since(since), mine, self._resolve)
        self.release_requests |= requests.releases
        # The skips the controller recorded (one read per closed, skip-labelled PR), for the
        # backports and the release round alike.
        skips = recorded_skips(self.policy, self.forge, mine, self.policy.label("skip"))
        plan = self.ws.plan(series)
        actions, wanted = self._backports(plan, requests, mine, skips)
        applied: list[Action] = []
        rounds = ReleaseRound(
            self.ws,
            self.forge,
            self.findings,
            now=self.now,
            requested=self.release_requests,
            skips=skips,
        )
        if dry_run:
            actions += mergeable(
                self.ws, self.forge, plan, wanted=wanted, mine=mine, findings=self.findings
            )
            actions += rounds.run(plan, prs, None)
        else:
            applied = self.applier.apply(actions)
            # Decided after this run's own actions (a retest has just made checks pending).
            merges = mergeable(
                self.ws, self.forge, plan, wanted=wanted, mine=mine, findings=self.findings
            )
            applied += self.applier.apply(merges)
            actions += merges
            done = rounds.run(plan, prs, self.applier.apply)
            applied += done
            actions += done
            self._refresh_feed(series, published=any(a.kind == "release" for a in done))
        return SyncReport(
            plan=plan,
            actions=actions,
            applied=applied,
            problems=self.findings.problems + plan.errors,
            notices=self.findings.notices,
            routine=self.findings.routine,
            prs=pr_view(stablectl_prs(self.policy, self.forge, "all") if applied else prs),
            api=self.forge.stats.as_dict(),
            dry_run=dry_run,
            write_points=self.writes.count,
        )

    def _collaborators(self) -> None:
        """The run's presenter, desired state and applier, given what each uses of the
        workspace as it is after the fetch (which reopens the cache and the index)."""
        ws = self.ws
        self.presenter = Presenter(ws.policy, ws.index, ws.cache.repo, self.policy_name)
        self.desired = DesiredState(
            ws.policy, ws.index, ws.cache, ws.picker, self.presenter, self.findings
        )
        self.applier = Applier(
            ws.policy,
            ws.cache,
            self.forge,
            state_dir=ws.state_dir,
            pusher=self.pusher,
            findings=self.findings,
            writes=self.writes,
        )

    def _backports(
        self, plan: Plan, requests: Requests, mine: list[PullRequest], skips: frozenset[int]
    ) -> tuple[list[Action], list[Wanted]]:
        """The actions that make every series' backport PRs match the plan."""
        actions: list[Action] = list(requests.actions)
        wanted_all: list[Wanted] = []
        skipping = frozenset(
            a.payload.pr for a in requests.actions if isinstance(a.payload, SkipPR)
        )
        for sp in plan.series:
            if not sp.selection.branch_exists:
                s = sp.series
                create = CreateStable(s.stable_branch, sp.selection.base_sha)
                detail = f"create at {s.base} {sp.selection.base_sha[:10]}"
                actions.append(Action(s.name, s.stable_branch, detail, create))
            wanted = self.desired.wanted(sp, requests.backports, mine, missing=requests.missing)
            wanted_all += wanted
            result = reconcile(wanted, self._view(sp, mine, skipping, skips))
            actions += result.actions
            self.findings.notices += result.notices
            self.findings.routine += result.routine
        return actions, wanted_all

    def _view(
        self,
        sp: SeriesPlan,
        mine: list[PullRequest],
        skipping: frozenset[int],
        skips: frozenset[int],
    ) -> SeriesView:
        s = sp.series
        cache = self.ws.cache
        branches = {}
        for b in cache.fork_branches(f"stablectl/{s.name}/"):
            sha = cache.fork_branch(b)
            if sha is not None:
                branches[b] = sha
        return SeriesView(
            series=s.name,
            prs=[p for p in mine if p.marker and p.marker.series == s.name],
            branches=branches,
            fixes={
                pf.candidate.fix.key: (pf.status, pf.candidate.reason or pf.not_applicable)
                for pf in sp.fixes
            },
            skipping=skipping,
            skips=skips,
            skip_label=self.policy.label("skip"),
            own_labels=frozenset(own_labels(self.policy)),
        )

    def _resolve(self, sha: str) -> str | None:
        found = find_commit(self.ws.cache.repo, sha)
        return str(found.id) if found is not None else None

    def _refresh_feed(self, series: list[str] | None, *, published: bool) -> None:
        """Rewrite status.json, feed.atom and index.html (`release.feed`) after a release,
        or when they are not there yet. A failure here is a problem, not an abort: the
        release itself is done."""
        feed = self.policy.release.feed
        if feed is None:
            return
        out = Path(feed) if Path(feed).is_absolute() else self.ws.state_dir / feed
        if not published and (out / "status.json").is_file():
            return
        from stablectl.controller.status import collect, write_feed

        try:
            plan = self.ws.plan(series)  # after this run's merges and releases
            data = collect(
                self.policy,
                plan,
                self.ws.cache.repo,
                fork_tip=self.ws.cache.fork_branch,
                forge=self.forge,
                releases_dir=self.ws.state_dir / "releases" / self.policy.project,
            )
            write_feed(data, out, policy_trust(self.policy))
            self.findings.notice(f"feed refreshed in {out}")
        except (StablectlError, OSError) as e:
            self.findings.problem(f"feed not refreshed: {e}")


def pr_view(prs: list[PullRequest]) -> dict[str, list[PRView]]:
    """stablectl's backport PRs by series, as the report shows them."""
    out: dict[str, list[PRView]] = {}
    for p in prs:
        m = p.marker
        if m is None or m.kind != "backport":
            continue
        out.setdefault(m.series, []).append(
            PRView(
                number=p.number,
                state=p.state,
                draft=p.draft,
                title=p.title,
                head=p.head,
                head_sha=p.head_sha,
                labels=p.labels,
                url=p.url,
                original=m.original,
                status=m.extra.get("status"),
            )
        )
    return out
