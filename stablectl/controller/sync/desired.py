"""The desired state of one series: for every pending fix (and every maintainer request), the
branch head its PR should show — the open PR's head kept, a fresh pick, a pick stacked on the
fixes it depends on, or a commit carrying the conflict — and the PR's text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pygit2

from stablectl.controller.downstream import adapt, adapted_commit
from stablectl.controller.missing_names import MissingName, decode, encode, find_definer
from stablectl.controller.parts import Split
from stablectl.controller.plan import PlannedFix, SeriesPlan
from stablectl.controller.prerequisites import Prerequisite
from stablectl.controller.selection import FixState
from stablectl.controller.sync.actions import Findings
from stablectl.controller.sync.presentation import (
    Backport,
    PickStatus,
    Presenter,
    branch_name,
    conflict_commit_message,
    prerequisites_text,
)
from stablectl.controller.sync.stacking import Link, overlaps, pick_fix, stack
from stablectl.forge.base import Marker, PullRequest
from stablectl.gitops.cache import RepoCache
from stablectl.gitops.messages import Adapted
from stablectl.gitops.pick import Picker
from stablectl.gitops.pick_result import ConflictFile
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Policy, Series

Requests = Mapping[tuple[str | None, str], str]  # (series or None, sha) -> maintainer


@dataclass(frozen=True)
class Needs:
    """Pending fixes a fix's tests need (their keys), and the names that said so."""

    keys: tuple[str, ...] = ()
    missing: str = ""


@dataclass(frozen=True)
class _Placed:
    """A cleanly picking fix's PR head (None: none applies), the fixes it is stacked on, the
    conflicts of its own pick when that failed, and what its tests need."""

    head: str | None
    depends: tuple[str, ...]
    conflicts: tuple[ConflictFile, ...] | None
    needs: Needs


@dataclass(frozen=True)
class Wanted:
    """What one pending fix should look like on the forge."""

    series: Series
    key: str
    branch: str
    head: str
    status: PickStatus
    title: str
    body: str
    labels: tuple[str, ...]
    marker: Marker
    requested_by: str | None = None


class DesiredState:
    """Computes the wanted PRs of each series (picks in memory; writes nothing remote)."""

    def __init__(
        self,
        policy: Policy,
        index: CommitIndex,
        cache: RepoCache,
        picker: Callable[[Series | None], Picker],
        presenter: Presenter,
        findings: Findings,
    ) -> None:
        self.policy, self.index, self.cache, self.picker = policy, index, cache, picker
        self.presenter = presenter
        self.findings = findings

    def wanted(
        self,
        sp: SeriesPlan,
        requests: Requests,
        mine: list[PullRequest],
        *,
        missing: Mapping[int, list[MissingName]] | None = None,
    ) -> list[Wanted]:
        """`missing`: by PR number, the names its tests failed on (controller/missing.py)."""
        s = sp.series
        ctx = _SeriesContext(
            sp=sp,
            tip=sp.selection.tip_sha,
            picker=self.picker(s),
            open_by_key={
                p.marker.original: p
                for p in mine
                if p.state == "open" and p.marker and p.marker.series == s.name
            },
        )
        out: list[Wanted] = []
        chain: list[Link] = []  # clean picks so far
        # A not-applicable fix gets a PR only when a maintainer asks for it (below).
        planned = {pf.candidate.fix.key for pf in sp.fixes if pf.status != FixState.NOT_APPLICABLE}
        for pf in sp.fixes:
            if pf.status == FixState.NEW_ERROR:
                fix = pf.candidate.fix
                self.findings.problem(f"{s.name}: {fix.key[:10]} {fix.subject}: {pf.note}")
            if pf.status == FixState.NEW_ADAPTED:
                w = self._want_adapted(ctx, pf)
                if w is not None:
                    out.append(w)
                continue
            if not (pf.applies or pf.status in (FixState.NEW_CONFLICT, FixState.NEW_TO_ADAPT)):
                continue
            needs = Needs()
            if pf.applies:
                pf, needs = self._with_test_prerequisites(ctx, pf, missing or {})
            w = self._want_fix(ctx, pf, chain, needs)
            if w is not None:
                out.append(w)
        # Requested by a maintainer but not flagged by the policy.
        for (series, sha), user in sorted(requests.items(), key=lambda kv: kv[0][1]):
            key = self._key_of(sha)
            if series not in (None, s.name) or key in planned or any(w.key == key for w in out):
                continue
            w = self._want_requested(ctx, sha, key, user)
            if w is not None:
                out.append(w)
        # Open PRs a maintainer asked for earlier stay wanted while the fix is pending.
        for key, pr in ctx.open_by_key.items():
            m = pr.marker
            if m is None or not m.extra.get("requested") or key in planned:
                continue
            if any(w.key == key for w in out):
                continue
            w = self._want_requested(ctx, m.source or key, key, m.extra["requested"])
            if w is not None:
                out.append(w)
        return out

    def _key_of(self, sha: str) -> str:
        facts = self.index.facts(sha)
        if facts is not None and facts.info.cherry_picked_from:
            return facts.info.cherry_picked_from[0]
        return sha

    def _want_fix(
        self, ctx: _SeriesContext, pf: PlannedFix, chain: list[Link], needs: Needs
    ) -> Wanted | None:
        fix = pf.candidate.fix
        source = pf.chosen.source if pf.chosen else (pf.attempts[0].source if pf.attempts else None)
        if source is None:
            return None
        # The conflicts a draft PR shows if no head applies.
        conflicts = tuple(pf.attempts[0].result.conflicts) if pf.attempts else ()
        head: str | None = None
        depends: tuple[str, ...] = ()
        if pf.chosen is not None:
            placed = self._place(ctx, pf, source.sha, chain, needs)
            if placed is None:
                return None
            head, depends, needs = placed.head, placed.depends, placed.needs
            conflicts = placed.conflicts if placed.conflicts is not None else conflicts
        status: PickStatus = "clean" if head is not None else "conflict"
        if head is not None:
            conflicts = ()
            chain.append(Link(pf, head))
        else:
            head = self._conflict_head(ctx, fix.key, source.sha, fix.subject, pf.split)
            if head is None:
                return None
            if pf.split is not None:
                conflicts = tuple(pf.split.result.conflicts)
        return self._wanted(
            Backport(
                series=ctx.sp.series,
                key=fix.key,
                source=source.sha,
                source_kind=source.kind,
                source_branch=source.branch,
                head=head,
                status=status,
                fix=pf,
                conflicts=conflicts,
                depends=depends,
                prerequisites=pf.prerequisites if status == "clean" else (),
                missing=needs.missing if status == "clean" else "",
                split=pf.split if status == "conflict" else None,
            )
        )

    def _want_adapted(self, ctx: _SeriesContext, pf: PlannedFix) -> Wanted | None:
        """A conflict a downstream patch resolves: that patch applied alone onto the stable
        tip, its adaptation recorded (`Stablectl-Adapted`, with its PR once open) for review."""
        a, fix = pf.adapted_from, pf.candidate.fix
        assert a is not None
        picker, repo = ctx.picker, ctx.picker.repo
        now = adapt(repo, picker, a.patch, a.why, a.source, ctx.tip)
        if now is None:
            self.findings.notice(
                f"{ctx.sp.series.name}: {fix.key[:10]}: {a.patch.describe()} no longer applies "
                "alone onto the stable branch"
            )
            return None
        pr = ctx.open_by_key.get(fix.key)
        record = Adapted(a.source, now.change.lines, pr.number if pr else None, now.change.digest)
        head = adapted_commit(repo, picker, a.source, ctx.tip, now.tree, a.patch, record)
        b = Backport(
            series=ctx.sp.series,
            key=fix.key,
            source=a.source,
            source_kind="downstream",
            source_branch=None,
            head=head,
            status="clean",
            fix=pf,
            adaptation=now,
        )
        return self._wanted(b)

    def _place(
        self, ctx: _SeriesContext, pf: PlannedFix, source: str, chain: list[Link], needs: Needs
    ) -> _Placed | None:
        """Where a fix that picks cleanly goes: stacked on the pending fixes its tests need;
        else alone onto the tip (its open head kept while still right); else stacked on the
        earlier pending fixes it shares files with (the PR shows them too; merged after them).
        None: its pick alone changes nothing, so there is nothing to backport alone."""
        head: str | None = None
        depends: tuple[str, ...] = ()
        conflicts: tuple[ConflictFile, ...] | None = None
        if needs.keys:
            st = stack(self.index, ctx.picker, fix=pf, tip=ctx.tip, chain=chain, needs=needs.keys)
            if st is not None:
                head, depends = st.head, st.depends
            else:
                needs = Needs()  # they are not in the chain (conflicts): tested alone
        if head is None and not overlaps(self.index, pf, chain):
            key = pf.candidate.fix.key
            head = self.keep_existing(ctx.open_by_key.get(key), source, ctx.tip, picks=pf.picks)
            if head is None:
                res = pick_fix(ctx.picker, pf, ctx.tip)
                if res.ok and not res.commit:
                    return None
                head, conflicts = res.commit, tuple(res.conflicts)
        if head is None:
            st = stack(self.index, ctx.picker, fix=pf, tip=ctx.tip, chain=chain)
            if st is not None:
                head, depends = st.head, st.depends
        return _Placed(head, depends, conflicts, needs)

    def _with_test_prerequisites(
        self, ctx: _SeriesContext, pf: PlannedFix, missing: Mapping[int, list[MissingName]]
    ) -> tuple[PlannedFix, Needs]:
        """The fix with what its tests need: names its open PR's tests failed on (the CI's
        comment on its current head, or kept in its marker), each resolved to the upstream
        commit that defined it between the base and the source. That commit is picked under
        the fix as a prerequisite or, when it belongs to another pending fix (its own PR),
        the fix is stacked on that fix (`Needs`). Unchanged when there is nothing, or when it
        does not apply (said as a notice)."""
        fix = pf.candidate.fix
        pr = ctx.open_by_key.get(fix.key)
        if pr is None or pr.marker is None or pf.chosen is None:
            return pf, Needs()
        kept = decode(pr.marker.extra.get("missing", ""))
        names = list(dict.fromkeys([*kept, *missing.get(pr.number, [])]))
        if not names:
            return pf, Needs()
        found, needs, said = self._definers(ctx, pf, pf.chosen.source.sha, names)
        return self._with_prerequisites(ctx, pf, found), Needs(
            tuple(dict.fromkeys(needs)), ";".join(said)
        )

    def _definers(
        self, ctx: _SeriesContext, pf: PlannedFix, source: str, names: list[MissingName]
    ) -> tuple[list[Prerequisite], list[str], list[str]]:
        """For each missing name, the upstream commit defining it between the base and
        `source`: a new prerequisite, or the pending fix it belongs to (its key, and the name
        that said so, encoded)."""
        fix, s = pf.candidate.fix, ctx.sp.series
        owners = {
            sha: x.candidate.fix.key
            for x in ctx.sp.fixes
            if x.applies and x.candidate.fix.key != fix.key
            for sha in (*x.candidate.fix.members, *x.picks)
        }
        have = {p.sha for p in pf.prerequisites}
        found: list[Prerequisite] = []
        needs: list[str] = []
        said: list[str] = []
        for m in names:
            d = find_definer(self.cache.path, m, ctx.sp.selection.base_sha, source, self.index)
            if d is None:
                self.findings.notice(
                    f"{s.name}: {fix.key[:10]}: its tests miss {m.describe()} ({m.error}); no "
                    f"upstream commit between the base and {source[:10]} defines it"
                )
                continue
            if d.sha in have or d.sha == source:
                continue
            if ctx.picker.pick(d.sha, ctx.tip).outcome == "empty":
                # The line has it now (merged since the run that failed): the fix is picked
                # again onto the moved tip and tested there, without a copy of it.
                continue
            owner = owners.get(d.sha)
            if owner is not None:
                # A pending fix of its own: stacked on it (its PR merges first), not copied.
                needs.append(owner)
                said.append(encode([m]))
                continue
            have.add(d.sha)
            found.append(
                Prerequisite(d.sha, d.subject, (d.path,), reason=d.why, missing=encode([m]))
            )
        return found, needs, said

    def _with_prerequisites(
        self, ctx: _SeriesContext, pf: PlannedFix, found: list[Prerequisite]
    ) -> PlannedFix:
        """The fix with `found` among its prerequisites (in upstream's order), if it still
        picks cleanly with them; else unchanged (said as a notice)."""
        if not found:
            return pf
        index = self.index
        ordered = sorted(
            (*pf.prerequisites, *found),
            key=lambda p: f.commit_time if (f := index.facts(p.sha)) else 0,
        )
        out = replace(pf, prerequisites=tuple(ordered))
        res = pick_fix(ctx.picker, out, ctx.tip)
        if res.ok and res.commit:
            return out
        self.findings.notice(
            f"{ctx.sp.series.name}: {pf.candidate.fix.key[:10]}: its tests need "
            + ", ".join(f"{p.sha[:10]} ({p.why})" for p in found)
            + ", which does not apply onto the stable branch: resolve by hand"
        )
        return pf

    def _conflict_head(
        self, ctx: _SeriesContext, key: str, source: str, subject: str, split: Split | None
    ) -> str | None:
        """The draft PR's head: its commit carries git's conflict markers (of a fix to adapt,
        in its tests alone: the pick of `split`, its documentation left out)."""
        s = ctx.sp.series
        existing = ctx.open_by_key.get(key)
        head = self.keep_existing(
            existing, source, ctx.tip, conflict=True, to_adapt=split is not None
        )
        if head is None:
            message = conflict_commit_message(s, source, subject, split)
            picked = split.source if split is not None else source
            head = ctx.picker.conflict_commit(picked, ctx.tip, message)
        if head is None:
            self.findings.problem(
                f"{s.name}: {key[:10]} conflicts and git >= 2.38 is needed to show the "
                f"conflict in a draft PR; run `stablectl backport {source[:12]} "
                f"--series {s.name}`"
            )
        return head

    def keep_existing(
        self,
        pr: PullRequest | None,
        source: str,
        tip: str,
        *,
        conflict: bool = False,
        picks: tuple[str, ...] = (),
        to_adapt: bool = False,
    ) -> str | None:
        """An open PR's head stays as long as it was stablectl's, picks the same source (and
        the same prerequisites), has the same outcome and still sits on the stable branch's
        history: no needless pushes that would make approvals stale and rerun CI."""
        if pr is None or pr.marker is None:
            return None
        m = pr.marker
        if m.source != source or m.extra.get("pushed") != pr.head_sha:
            return None
        if (m.extra.get("status") == "conflict") != conflict:
            return None
        if (m.extra.get("to_adapt") == "1") != to_adapt:
            return None  # a conflict now to adapt (or the other way): its head is another
        prereqs = picks[:-1]
        if m.extra.get("prerequisites", "") != prerequisites_text(prereqs):
            return None
        repo = self.cache.repo
        try:
            head = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit)
            commits = [head]
            for _ in prereqs:  # the PR's first commit sits on the branch
                commits.insert(0, commits[0].parents[0])
        except (KeyError, ValueError, IndexError):
            return None
        first = commits[0]
        parent = str(first.parents[0].id) if first.parents else None
        if parent is None:
            return None
        if parent == tip:
            return pr.head_sha
        if self.policy.label("tests-failed") in pr.labels:
            # Its tests failed on an older tip: picked again onto the moved one, so a fix that
            # needs one merged since (found on Debian's queue: gh-143925's test imports a
            # helper gh-143916 adds to test.support) is tested again, not stuck.
            return None
        if not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=parent)):
            return None
        if conflict:
            return pr.head_sha
        # The stable branch moved on (other backports merged): the head stays only if it
        # still applies there, as the forge's rebase merge will need.
        picker = self.picker(None)
        onto = tip
        for c in commits:
            res = picker.pick(str(c.id), onto)
            if not res.ok:
                return None
            onto = res.commit or onto
        return pr.head_sha

    def _want_requested(self, ctx: _SeriesContext, sha: str, key: str, user: str) -> Wanted | None:
        s = ctx.sp.series
        existing = ctx.open_by_key.get(key)
        head = self.keep_existing(existing, sha, ctx.tip)
        status: PickStatus = "clean"
        conflicts: tuple[ConflictFile, ...] = ()
        if head is None:
            res = ctx.picker.pick(sha, ctx.tip)
            if res.ok and res.commit:
                head = res.commit
            elif res.ok:
                self.findings.notice(f"{s.name}: requested {sha[:10]} changes nothing there")
                return None
            else:
                status, conflicts = "conflict", tuple(res.conflicts)
                head = self.keep_existing(
                    existing, sha, ctx.tip, conflict=True
                ) or ctx.picker.conflict_commit(
                    sha,
                    ctx.tip,
                    f"[conflict] backport of {sha}\n\nDO NOT MERGE: carries conflict markers.\n",
                )
        if head is None:
            self.findings.problem(f"{s.name}: requested {sha[:10]} cannot be picked")
            return None
        return self._wanted(
            Backport(
                series=s,
                key=key,
                source=sha,
                source_kind="requested",
                source_branch=None,
                head=head,
                status=status,
                fix=None,
                conflicts=conflicts,
                requested_by=user,
            )
        )

    def _wanted(self, b: Backport) -> Wanted:
        text = self.presenter.pr_text(b)
        return Wanted(
            series=b.series,
            key=b.key,
            branch=branch_name(b.series.name, b.key),
            head=b.head,
            status=b.status,
            title=text.title,
            body=text.body,
            labels=text.labels,
            marker=text.marker,
            requested_by=b.requested_by,
        )


@dataclass(frozen=True)
class _SeriesContext:
    sp: SeriesPlan
    tip: str
    picker: Picker
    open_by_key: dict[str, PullRequest]
