"""Planning: each series' selection, then its fixes picked in order onto the stable tip,
chained (a clean pick becomes the tip of the next), with applicability's verdicts and the
prerequisite search for what conflicts. Reads the workspace; changes nothing on the fork."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pygit2

from stablectl.controller.applicability import (
    FOLLOW_UP,
    Verdict,
    code_paths,
    not_built,
    remembered_verdict,
    upstream_note,
)
from stablectl.controller.choice import Chooser, documentation_only_verdict, pick_best
from stablectl.controller.pick_ahead import PROCESSES_FROM, PickAhead, default_jobs
from stablectl.controller.plan import Attempt, Plan, PlannedFix, SeriesPlan
from stablectl.controller.prerequisites import (
    Prerequisite,
    PrerequisiteFinder,
)
from stablectl.controller.resolutions import Resolutions
from stablectl.controller.selection import Candidate, FixState, SeriesSelection
from stablectl.controller.selection.states import excluded_by
from stablectl.controller.waiting import (
    NOT_YET,
    follow_up_standing,
    parents_first,
    rides_on,
    waits_on_writer,
)
from stablectl.errors import GitError, PolicyError
from stablectl.gitops.cache import RepoCache
from stablectl.gitops.pick import Picker
from stablectl.gitops.provenance import reachable
from stablectl.gitops.scan import CommitIndex
from stablectl.jsondoc import JSONDoc
from stablectl.policy import FOLLOW_UP_RULE, Policy, Series

if TYPE_CHECKING:
    from stablectl.controller.workspace import Workspace


class Planner:
    """One plan over a workspace: its cache and index, its selector and picker."""

    def __init__(
        self, ws: Workspace, *, jobs: int | None = None, processes: bool | None = None
    ) -> None:
        self.ws = ws
        self.seconds: dict[str, float] = {}  # the plan's time by part
        # Threads picking ahead (pick_ahead.py), one per core by default; 1: none.
        self.jobs = jobs if jobs is not None else default_jobs()
        # Whether they pick in worker processes; None: for a series with many fixes to pick.
        self.processes = processes
        self.ahead_stats: Counter[str] = Counter()  # what the threads did, over all series

    @property
    def policy(self) -> Policy:
        return self.ws.policy

    @property
    def index(self) -> CommitIndex:
        return self.ws.index

    @property
    def cache(self) -> RepoCache:
        return self.ws.cache

    def plan(
        self,
        series: list[str] | None = None,
        *,
        on_series: Callable[[str, int, int], None] | None = None,
    ) -> Plan:
        problems = self.ws.semantic_problems()
        if problems:
            raise PolicyError([f"policy: {'.'.join(map(str, loc))}: {m}" for loc, m in problems])
        wanted = [self.policy.get_series(n) for n in series] if series else self.policy.series
        selector = self.ws.selector()
        picker = self.ws.picker()
        plans: list[SeriesPlan] = []
        vetted: set[str] = set()
        finder = self.prerequisite_finder(picker, vetted)
        self.seconds = dict.fromkeys(("select", "pick", "applicability", "prerequisites"), 0.0)
        for s in wanted:
            start = time.perf_counter()
            try:
                sel = selector.select(s)
            except KeyError as e:
                raise GitError(f"series {s.name}: upstream has no tag {e.args[0]!r}") from None
            self._took("select", start)
            vetted.update(sel.own_backports)
            picker.path_map = dict(s.path_map)
            plans.append(self._chain(sel, picker, finder, on_series))
        errors = sorted(
            {e for sp in plans for e in sp.selection.errors}
            | set(self.ws.queue_problems)
            | set(self.ws.issue_warnings)
        )
        stats: JSONDoc = dict(self.index.stats)
        stats.update({f"picks_{k}": v for k, v in picker.stats.items()})
        stats.update({f"prerequisite_{k}": v for k, v in finder.stats.items()})
        stats.update({f"ahead_{k}": v for k, v in self.ahead_stats.items()})
        # Where a plan's time goes (bench/eol_lines.py reports it): selection (scanning the
        # windows' history, then flagging: making the fixes and their states), picks,
        # applicability's verdicts, the prerequisite search.
        self.seconds.update(selector.seconds)
        stats.update({f"seconds_{k}": round(v, 3) for k, v in self.seconds.items()})
        if self.ws.issue_searches is not None:
            stats["issue_searches"] = self.ws.issue_searches
        if self.index.db is not None:
            self.index.db.commit()
        return Plan(self.policy.project, plans, errors, stats)

    def prerequisite_finder(
        self, picker: Picker, vetted: set[str] | None = None
    ) -> PrerequisiteFinder:
        """`vetted`: originals upstream backported to a maintenance branch (filled as the
        series are selected); with `prerequisites.vetted_only`, a candidate must be one of
        them or on a maintenance branch itself."""
        p = self.policy
        excluded = p.exclusions
        cache = self.cache
        main = p.upstream.main
        branches = {b for s in p.series for b in s.sources[:1] if b != main}
        tips = [t for b in sorted(branches) if (t := cache.resolve(f"refs/remotes/upstream/{b}"))]
        backported = vetted if vetted is not None else set()

        def on_maintenance() -> frozenset[str]:
            # Every commit on a maintenance branch: one walk per process (gitops.provenance),
            # not a reachability search per candidate (11 s of a 3.9.2 line's cold plan).
            return reachable(cache.repo, [pygit2.Oid(hex=t) for t in tips])

        def unusable(sha: str) -> str:
            facts = self.index.facts(sha)
            names = [sha, *(facts.info.cherry_picked_from if facts is not None else ())]
            reason = excluded_by(excluded, names)
            if reason is not None:
                return f"is excluded by the policy ({reason})"
            if p.prerequisites.vetted_only and not (
                any(n in backported for n in names) or sha in on_maintenance()
            ):
                return (
                    f"is only on {main}: upstream put it on no maintenance branch (a feature or "
                    "a refactor, not a fix; prerequisites.vetted_only)"
                )
            return ""

        return PrerequisiteFinder(
            self.cache.repo,
            self.index,
            picker,
            max_commits=p.prerequisites.max_commits,
            max_candidates=p.prerequisites.max_candidates,
            unusable=unusable,
            horizon_days=p.prerequisites.horizon_days,
        )

    def _chain(
        self,
        sel: SeriesSelection,
        picker: Picker,
        finder: PrerequisiteFinder,
        on_series: Callable[[str, int, int], None] | None,
    ) -> SeriesPlan:
        choose = Chooser(
            self.policy.applicability if self.policy.applicability.skip else None,
            finder.blame_ahead(sel.base_sha, self.policy.prerequisites.sources),
        )
        pending = sum(c.state == FixState.PENDING for c in sel.candidates)
        processes = self.processes
        if processes is None:
            processes = pending >= PROCESSES_FROM
        with PickAhead(picker, choose, self.index, jobs=self.jobs, processes=processes) as ahead:
            finder.ahead = ahead.blame
            try:
                return self._chain_picks(sel, picker, finder, on_series, ahead)
            finally:
                finder.ahead = None
                self.ahead_stats.update(ahead.stats)

    def _chain_picks(
        self,
        sel: SeriesSelection,
        picker: Picker,
        finder: PrerequisiteFinder,
        on_series: Callable[[str, int, int], None] | None,
        ahead: PickAhead,
    ) -> SeriesPlan:
        tip = sel.tip_sha
        fixes: list[PlannedFix] = []
        ordered = parents_first(sel.candidates)
        pending = [c for c in ordered if c.state == FixState.PENDING]
        done = 0
        by_key: dict[str, PlannedFix] = {}
        member_of = {m: c.fix.key for c in sel.candidates for m in c.fix.members}
        for cand in ordered:
            if cand.state != FixState.PENDING:
                fixes.append(by_key.setdefault(cand.fix.key, PlannedFix(cand)))
                continue
            ahead.follow(pending[done:], tip, lambda c: self._picks(sel, c, by_key))
            pf = self._plan_fix(sel, cand, picker, finder, tip, by_key, member_of)
            fixes.append(pf)
            by_key.setdefault(cand.fix.key, pf)
            if pf.chosen is not None and pf.chosen.result.outcome == "clean" and pf.applies:
                assert pf.chosen.result.commit is not None
                tip = pf.chosen.result.commit
            done += 1
            if on_series is not None:
                on_series(sel.series.name, done, len(pending))
        return SeriesPlan(selection=sel, fixes=fixes, final_tip=tip)

    def _picks(
        self, sel: SeriesSelection, cand: Candidate, by_key: Mapping[str, PlannedFix]
    ) -> bool | None:
        """Whether `_plan_fix` will pick `cand` once the fixes before it are planned: not a
        follow-up it leaves out or lets wait, not a fix the line does not build; None while
        a fix it follows is still to be planned."""
        if not self.policy.applicability.skip:
            return True
        if all(h.rule == FOLLOW_UP_RULE for h in cand.fix.flags):
            keys = {c.fix.key for c in sel.candidates}
            if any(k in keys and k not in by_key for k in cand.fix.follows_all):
                return None
        return self._before_pick(sel.series, cand, by_key)[0] is None

    def _plan_fix(
        self,
        sel: SeriesSelection,
        cand: Candidate,
        picker: Picker,
        finder: PrerequisiteFinder,
        tip: str,
        by_key: Mapping[str, PlannedFix],
        member_of: Mapping[str, str],
    ) -> PlannedFix:
        """One pending fix onto `tip`: its verdict from the line's code (applicability.py),
        or its pick, with prerequisites when it conflicts."""
        judge = self.policy.applicability.skip
        follows_info = ""
        if judge:
            verdict, follows_info = self._before_pick(sel.series, cand, by_key)
            if verdict is not None:
                return verdict
        start = time.perf_counter()
        with self.index.batch():
            attempts, chosen, note = pick_best(
                picker,
                cand.sources,
                tip,
                self.index,
                is_code=self.policy.applicability.is_code if judge else None,
            )
        self._took("pick", start)
        conflicting = next((a for a in attempts if a.result.outcome == "conflict"), None)
        docs = next((a for a in attempts if a.documentation_only), None)
        if chosen is not None or conflicting is None:
            if chosen is None and docs is not None:
                return documentation_only_verdict(sel.series, cand, attempts, docs)
            if judge and chosen is not None and chosen.result.outcome == "empty":
                # Empty on the chain: on the line, or brought by a pending fix of the plan.
                rides = self._empty_rides(sel, chosen, picker, tip, by_key)
                if rides:
                    return PlannedFix(cand, attempts=attempts, waits_for=rides, info=follows_info)
            return PlannedFix(cand, attempts=attempts, chosen=chosen, note=note, info=follows_info)
        if judge and (waits := self._waits(finder, sel, cand, conflicting, by_key, member_of)):
            return PlannedFix(cand, attempts=attempts, waits_for=waits, info=follows_info)
        if judge:
            start = time.perf_counter()
            v = self._judged(sel.series, conflicting.source.sha, tip, sel.searched)
            rides = ""
            if v is not None and tip != sel.tip_sha:
                v, rides = self._on_the_line(sel, conflicting, v, by_key)
            self._took("applicability", start)
            if rides:
                return PlannedFix(cand, attempts=attempts, waits_for=rides, info=follows_info)
            if v is not None:
                return _judged_conflict(cand, attempts, v, docs)
        return self._after_conflict(finder, picker, sel, cand, attempts, tip, follows_info)

    def _on_the_line(
        self,
        sel: SeriesSelection,
        conflicting: Attempt,
        v: Verdict,
        by_key: Mapping[str, PlannedFix],
    ) -> tuple[Verdict | None, str]:
        """A verdict reached on the plan's chain must hold on the line itself: a change
        "already there" only because an earlier fix of the plan (not merged yet) brings it
        is not applied, it waits for that fix (if that fix is skipped, it is a conflict
        again, never silently dropped). Else no verdict: a person looks."""
        source = conflicting.source.sha
        real = self._judged(sel.series, source, sel.tip_sha, sel.searched)
        if real is not None and real.state == v.state:
            return v, ""
        return None, rides_on(source, by_key, self.index.facts)

    def _empty_rides(
        self,
        sel: SeriesSelection,
        chosen: Attempt,
        picker: Picker,
        tip: str,
        by_key: Mapping[str, PlannedFix],
    ) -> str:
        """A pick empty on the plan's chain but not on the line: the earlier fixes of the plan
        that bring its change, which it waits for ("" when it is on the line itself)."""
        if tip == sel.tip_sha or picker.pick(chosen.source.sha, sel.tip_sha).outcome == "empty":
            return ""
        return rides_on(chosen.source.sha, by_key, self.index.facts)

    def _documentation_only(self, sha: str) -> bool:
        """Every path commit `sha` changes is documentation or NEWS (never said of a commit
        whose path list was cut short)."""
        facts = self.index.facts(sha)
        if facts is None or facts.paths_truncated:
            return False
        return not code_paths(facts.paths, self.policy.applicability.is_code)

    def _waits(
        self,
        finder: PrerequisiteFinder,
        sel: SeriesSelection,
        cand: Candidate,
        conflicting: Attempt,
        by_key: Mapping[str, PlannedFix],
        member_of: Mapping[str, str],
    ) -> str:
        """What a conflicting fix waits for: a fix of the plan that does not apply yet and
        writes the lines it changes (before any verdict: code such a fix adds is not absent
        from the line, only not there yet)."""
        if not any(pf.status in NOT_YET for pf in by_key.values()):
            return ""
        if self._documentation_only(conflicting.source.sha):
            return ""  # judged as such, never held
        blamed = finder.blame(conflicting.source.sha, sel.base_sha, conflicting.result.conflicts)
        return waits_on_writer(cand.fix.key, blamed, member_of, by_key)

    def _before_pick(
        self, series: Series, cand: Candidate, by_key: Mapping[str, PlannedFix]
    ) -> tuple[PlannedFix | None, str]:
        """A verdict reached without picking (a follow-up of a fix left out, or waiting for
        one; a fix the line does not build), and what the fix's follow-up standing says."""
        orphan, waits, follows_info = follow_up_standing(cand, by_key)
        if waits and cand.sources and self._documentation_only(cand.sources[0].sha):
            # A follow-up changing only documentation and NEWS never waits: it is judged
            # (documentation only) rather than held for a fix whose PR it could never join.
            waits = ""
        if orphan or waits:
            verdict = FOLLOW_UP if orphan else None
            return PlannedFix(
                cand, not_applicable=orphan, waits_for=waits, verdict=verdict
            ), follows_info
        first = self.index.facts(cand.sources[0].sha) if cand.sources else None
        rules = self.policy.applicability
        v = not_built(series, first.paths, rules.is_code, rules.not_built) if first else None
        if v is not None:
            return PlannedFix(
                cand, not_applicable=v.reason, evidence=v.evidence, verdict=v.kind
            ), follows_info
        return None, follows_info

    def _after_conflict(
        self,
        finder: PrerequisiteFinder,
        picker: Picker,
        sel: SeriesSelection,
        cand: Candidate,
        attempts: list[Attempt],
        tip: str,
        follows_info: str,
    ) -> PlannedFix:
        """A conflicting fix no verdict settles: picked over its prerequisites when a small
        set of upstream commits makes it apply; else a conflict, with what upstream did with
        it (information, never a verdict)."""
        start = time.perf_counter()
        with self.index.batch():
            chosen, prereqs, report = self._with_prerequisites(finder, sel, cand, attempts, tip)
        self._took("prerequisites", start)
        note = info = ""
        if chosen is not None:
            note = f"needs {len(prereqs)} upstream commit(s) first: " + ", ".join(
                p.sha[:10] for p in prereqs
            )
        else:
            start = time.perf_counter()
            with self.index.batch():
                resolved = Resolutions(self.ws, picker).resolve(
                    sel, cand, attempts, tip, info=follows_info, report=report
                )
            self._took("pick", start)
            if resolved is not None:
                return resolved
            info = upstream_note(
                self.index,
                cand.fix,
                sel.series,
                cand.sources,
                sel.own_backports,
                self.policy.applicability.main_only_days,
            )
        return PlannedFix(
            cand,
            attempts=attempts,
            chosen=chosen,
            note=note,
            prerequisites=prereqs,
            prerequisite_report=report,
            info=" ".join(x for x in (follows_info, info) if x),
        )

    def _judged(
        self, series: Series, source: str, tip: str, searched: tuple[str, ...]
    ) -> Verdict | None:
        return remembered_verdict(
            self.index, self.cache.repo, self.policy.applicability, series, source, tip, searched
        )

    def _took(self, part: str, start: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

    def _with_prerequisites(
        self,
        finder: PrerequisiteFinder,
        sel: SeriesSelection,
        cand: Candidate,
        attempts: list[Attempt],
        tip: str,
    ) -> tuple[Attempt | None, tuple[Prerequisite, ...], str]:
        """Each conflicting source in preference order (at most `prerequisites.sources`),
        until prerequisites make one clean."""
        reports: list[str] = []
        conflicting = [a for a in attempts if a.result.outcome == "conflict"]
        for a in conflicting[: self.policy.prerequisites.sources]:
            found = finder.search(
                a.source.sha,
                tip,
                sel.base_sha,
                a.result.conflicts,
                fix_key=cand.fix.key,
            )
            if found.found:
                assert found.result is not None
                return Attempt(a.source, found.result), found.prerequisites, ""
            if found.report:
                reports.append(f"{a.source.describe()}: {found.report}")
        return None, (), " | ".join(reports)


def _judged_conflict(
    cand: Candidate, attempts: list[Attempt], v: Verdict, docs: Attempt | None
) -> PlannedFix:
    """A conflicting fix settled by the line's code: applied already, or not applicable."""
    extra = (
        (f"{docs.source.describe()} changes only documentation on the line",)
        if docs is not None
        else ()
    )
    applied = v.state == FixState.APPLIED
    return PlannedFix(
        cand,
        attempts=attempts,
        applied=v.reason if applied else "",
        not_applicable="" if applied else v.reason,
        evidence=v.evidence + extra,
        verdict=v.kind,
    )
