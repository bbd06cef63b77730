"""The plan: per series, each flagged fix with its state and the outcome of a chained,
in-memory pick onto the stable tip. Computing it changes nothing on the fork or the forge."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl import __version__
from stablectl.controller.advisories import AdvisoryIndex, load_advisories
from stablectl.controller.applicability import (
    DOCUMENTATION_ONLY,
    FOLLOW_UP,
    VERDICTS_VERSION,
    Verdict,
    documentation_only,
    judge_conflict,
    not_built,
    upstream_note,
)
from stablectl.controller.issues import IssueCache
from stablectl.controller.prerequisites import Prerequisite, PrerequisiteFinder
from stablectl.controller.selection import (
    Candidate,
    FixState,
    Selector,
    SeriesSelection,
    Source,
)
from stablectl.controller.selection.states import excluded_by
from stablectl.errors import GitError, PolicyError
from stablectl.forge.base import Forge
from stablectl.gitops.cache import UPSTREAM_TAGS, Progress, RepoCache
from stablectl.gitops.messages import adapted_of
from stablectl.gitops.objects import commit as get_commit
from stablectl.gitops.pick import Committer, Picker, PickResult
from stablectl.gitops.provenance import Provenance, reachable
from stablectl.gitops.scan import CommitIndex
from stablectl.jsondoc import JSONDoc
from stablectl.policy import FOLLOW_UP_RULE, Policy, Series
from stablectl.state import check_state

PLAN_SCHEMA = "stablectl.plan/1"


@dataclass(frozen=True)
class Attempt:
    source: Source
    result: PickResult
    # A clean pick that changes only NEWS entries and documentation on the line: the paths.
    documentation_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedFix:
    candidate: Candidate
    attempts: list[Attempt] = field(default_factory=list)
    chosen: Attempt | None = None
    note: str = ""
    not_applicable: str = ""  # why the fix does not concern the line (see applicability.py)
    applied: str = ""  # why its change is on the line already without a trailer
    evidence: tuple[str, ...] = ()  # what the line's code showed for either verdict
    verdict: str = ""  # the rule behind `not_applicable` or `applied` (applicability.py)
    # A follow-up whose fix does not apply yet: planned once that fix is merged.
    waits_for: str = ""
    info: str = ""  # for the person resolving a conflict (applicability.upstream_note)
    # Upstream commits picked under the fix so that it applies (see prerequisites.py), oldest
    # first; with none found, why (the chain of what was tried).
    prerequisites: tuple[Prerequisite, ...] = ()
    prerequisite_report: str = ""

    @property
    def status(self) -> FixState:
        """The candidate's state, or for a pending fix the outcome of picking it: new-clean,
        new-clean-with-prerequisites, new-empty, new-conflict or new-error."""
        c = self.candidate
        if c.state != FixState.PENDING:
            return c.state
        if self.not_applicable:
            return FixState.NOT_APPLICABLE
        if self.applied:
            return FixState.APPLIED
        if self.waits_for:
            return FixState.WAITING
        if self.chosen is None:
            conflicted = any(a.result.outcome == "conflict" for a in self.attempts)
            return FixState.NEW_CONFLICT if conflicted else FixState.NEW_ERROR
        if self.prerequisites:
            return FixState.NEW_CLEAN_PREREQ
        return FixState(f"new-{self.chosen.result.outcome}")

    @property
    def not_affected(self) -> bool:
        """The line's code does not need the fix: judged not applicable, or a conflict whose
        change the code already has. What status, the release notes and vex.json state."""
        status = self.status
        return status == FixState.NOT_APPLICABLE or (
            status == FixState.APPLIED and bool(self.applied)
        )

    @property
    def why_not_affected(self) -> str:
        return self.not_applicable or self.applied

    @property
    def applies(self) -> bool:
        """A clean pick (with or without prerequisites) that a PR can offer."""
        return self.status in (FixState.NEW_CLEAN, FixState.NEW_CLEAN_PREREQ)

    @property
    def picks(self) -> tuple[str, ...]:
        """The upstream commits its PR picks, in order: prerequisites, then the source."""
        if self.chosen is None:
            return ()
        return (*(p.sha for p in self.prerequisites), self.chosen.source.sha)


@dataclass(frozen=True)
class SeriesPlan:
    selection: SeriesSelection
    fixes: list[PlannedFix]
    final_tip: str  # the in-memory chain's tip after every clean pick

    @property
    def series(self) -> Series:
        return self.selection.series


@dataclass
class Plan:
    project: str
    series: list[SeriesPlan]
    errors: list[str]
    stats: JSONDoc
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def to_json(self) -> JSONDoc:
        return {
            "schema": PLAN_SCHEMA,
            "stablectl": __version__,
            "project": self.project,
            "created": self.created,
            "errors": self.errors,
            "series": [_series_json(sp) for sp in self.series],
            "stats": self.stats,
        }


def _series_json(sp: SeriesPlan) -> JSONDoc:
    sel = sp.selection
    return {
        "name": sel.series.name,
        "branch": sel.series.stable_branch,
        "branch_exists": sel.branch_exists,
        "base": {"tag": sel.series.base, "sha": sel.base_sha},
        "tip": sel.tip_sha,
        "planned_tip": sp.final_tip,
        "errors": sel.errors,
        "fixes": [_fix_json(pf) for pf in sp.fixes],
    }


def _fix_json(pf: PlannedFix) -> JSONDoc:
    c = pf.candidate
    fx = c.fix
    chosen = pf.chosen
    return {
        "key": fx.key,
        "original": fx.original,
        "subject": fx.subject,
        "issues": fx.issues,
        "pr": fx.pr,
        "cves": fx.cves,
        "security": fx.security,
        "follows": fx.follows,
        "flags": [
            {"rule": h.rule, "commit": h.sha, "reason": h.reason, "security": h.security}
            for h in fx.flags
        ],
        "members": fx.members,
        "state": c.state,
        "status": pf.status,
        "reason": c.reason,
        "note": pf.note,
        "not_applicable": pf.not_applicable or None,
        "applied": pf.applied or None,
        "evidence": list(pf.evidence),
        "verdict": pf.verdict or None,
        "waits_for": pf.waits_for or None,
        "info": pf.info or None,
        "prerequisites": [
            {
                "commit": p.sha,
                "subject": p.subject,
                "where": list(p.where),
                "why": p.why,
                "context_only": p.context_only,
                "pick": p.commit,
            }
            for p in pf.prerequisites
        ],
        "prerequisite_report": pf.prerequisite_report or None,
        "source": None
        if chosen is None
        else {
            "commit": chosen.source.sha,
            "kind": chosen.source.kind,
            "branch": chosen.source.branch,
        },
        "result": None
        if chosen is None
        else {
            "outcome": chosen.result.outcome,
            "commit": chosen.result.commit,
            "tree": chosen.result.tree,
            "lever": chosen.result.lever,
        },
        "attempts": [
            {
                "source": a.source.sha,
                "kind": a.source.kind,
                "branch": a.source.branch,
                "outcome": a.result.outcome,
                "lever": a.result.lever,
                "error": a.result.error,
                "documentation_only": list(a.documentation_only),
                "ms": round(a.result.seconds * 1000, 2),
                "conflicts": [
                    {"path": cf.path, "kind": cf.kind, "hunks": cf.hunks}
                    for cf in a.result.conflicts
                ],
            }
            for a in pf.attempts
        ],
    }


def default_state_dir() -> Path:
    env = os.environ.get("STABLECTL_STATE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stablectl"


class Engine:
    """Binds a policy to its cache and index; computes plans."""

    def __init__(
        self,
        policy: Policy,
        state_dir: Path,
        *,
        progress: Progress | None = None,
        committer_time: int | None = None,
        forge: Forge | None = None,
    ) -> None:
        self.policy = policy
        self.state_dir = state_dir
        self.progress = progress
        self.cache = RepoCache(state_dir / "cache" / f"{policy.project}.git")
        self._index: CommitIndex | None = None
        self.committer_time = committer_time
        self._advisories: dict[str, AdvisoryIndex] | None = None
        self.forge = forge  # for label and issue rules: what the upstream forge says
        self._issues: IssueCache | None = None
        self._provenance: dict[str, Provenance] = {}
        self.seconds: dict[str, float] = {}  # the last plan's time by part
        # The state is a cache from anywhere (an actions/cache entry, an older stablectl):
        # checked before any store in it is opened.
        self.state_notes = check_state(policy, state_dir)

    @property
    def index(self) -> CommitIndex:
        if self._index is None:
            self._index = CommitIndex(
                self.cache.repo, self.state_dir / "cache" / f"{self.policy.project}.sqlite"
            )
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def fetch(self) -> None:
        """Bring the cache up to date with upstream and the fork; notice rewrites."""
        self.cache = RepoCache.open_or_init(self.cache.path)
        self.close()  # the index holds the old repository object; reopen it on demand
        p = self.policy
        self.cache.fetch_upstream(p.upstream.git, self.progress)
        self.cache.fetch_fork(p.fork.git, self.progress)
        branches = {p.upstream.main} | {b for s in p.series for b in s.sources}
        self.cache.check_and_record_tips(sorted(branches), [s.base for s in p.series])
        self.build_queues()

    def build_queues(self) -> None:
        """Each series' patch queue as a chain of commits on its base tag, under
        refs/remotes/upstream/stablectl-queue/<series> (rebuilt after every fetch)."""
        from stablectl.gitops.patches import build_chain, read_queue

        self.queue_problems: list[str] = []
        for s in self.policy.series:
            if not s.patches or not s.queue_branch:
                continue
            base = self.cache.upstream_tag(s.base)
            path = Path(s.patches).expanduser()
            if base is None or not path.exists():
                self.queue_problems.append(
                    f"series {s.name}: patch queue {s.patches} "
                    + ("not found" if not path.exists() else f"needs tag {s.base}")
                )
                continue
            ident = self.policy.identity
            tip, problems = build_chain(
                self.cache.path, base, read_queue(path), (ident.name, ident.email)
            )
            self.queue_problems += [f"series {s.name}: {x}" for x in problems]
            self.cache.repo.references.create(
                f"refs/remotes/upstream/{s.queue_branch}", pygit2.Oid(hex=tip), force=True
            )

    def semantic_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Policy problems only the repository can reveal: missing tags and branches."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        p = self.policy
        if self.cache.upstream_branch(p.upstream.main) is None:
            out.append((("upstream", "main"), f"upstream has no branch {p.upstream.main!r}"))
        for i, s in enumerate(p.series):
            if self.cache.upstream_tag(s.base) is None:
                out.append((("series", i, "base"), f"upstream has no tag {s.base!r}"))
            for j, b in enumerate(s.sources):
                if self.cache.upstream_branch(b) is None:
                    known = ", ".join(self.cache.upstream_branches()[:8])
                    out.append(
                        (("series", i, "sources", j), f"upstream has no branch {b!r} ({known})")
                    )
        return out

    def picker(self, series: Series | None = None) -> Picker:
        """A picker (for `series`: with its `path_map`)."""
        ident = self.policy.identity
        return Picker(
            self.cache.repo,
            Committer(ident.name, ident.email, self.committer_time),
            memo=self.index,
            path_map=series.path_map if series is not None else None,
        )

    def note_of(self, ref: str, sha: str) -> str | None:
        try:
            note = self.cache.repo.lookup_note(sha, ref)
        except (KeyError, pygit2.GitError, ValueError):
            return None
        return str(note.message)

    def selector(self) -> Selector:
        cache = self.cache

        def upstream_ref(ref: str) -> str | None:
            return cache.peel(ref) if ref.startswith(UPSTREAM_TAGS) else cache.resolve(ref)

        def stable_tip(series: Series) -> str | None:
            return cache.fork_branch(series.stable_branch)

        notes_refs = sorted({r.notes.ref for r in self.policy.flags if r.notes})
        notes_tips = ",".join(f"{r}={cache.resolve(r)}" for r in notes_refs)
        return Selector(
            self.policy,
            self.index,
            upstream_ref=upstream_ref,
            stable_tip=stable_tip,
            note_of=self.note_of,
            notes_tips=notes_tips,
            advisories=self.advisories(),
            labeled_prs=self.forge.labeled_prs if self.forge is not None else None,
            issues=self.issue_cache,
            carries=self.carries,
            upstream_branches=cache.upstream_branches,
        )

    def carries(self, series: Series, sha: str) -> bool:
        """Whether stable commit `sha` carries the upstream change its trailer names: its
        re-pick gives exactly its tree, or its recorded adaptation has exactly its interdiff
        (whether a maintainer approved that is the merge gate's and verify's question). A
        commit's yes never changes, so it is remembered."""
        key = f"{series.name}|{sha}"
        if self.index.memo_get("carries", key) is True:
            return True
        if series.name not in self._provenance:
            self._provenance[series.name] = Provenance(
                self.cache.repo, self.policy.queue_refs(), lambda: self.picker(series)
            )
        r = self._provenance[series.name].explain(sha)
        recorded = adapted_of(get_commit(self.cache.repo, sha).message) if r.adapted else None
        ok = r.verbatim or (
            recorded is not None
            and r.source is not None
            and r.source.startswith(recorded.source)
            and recorded.interdiff == r.change.digest
        )
        if ok:
            self.index.memo_put("carries", key, True)
        return ok

    @property
    def issue_cache(self) -> IssueCache | None:
        """The issue searches of issue rules, kept in the state directory (needs the forge)."""
        if self.forge is None:
            return None
        if self._issues is None:
            self._issues = IssueCache(
                self.forge,
                self.state_dir / "upstream-issues.sqlite",
                self.policy.upstream.forge or self.policy.upstream.git,
            )
        return self._issues

    def advisories(self) -> dict[str, AdvisoryIndex]:
        """The advisory databases the flag rules name, read (and fetched) once per run."""
        if self._advisories is None:
            self._advisories = {
                r.name: load_advisories(r.advisories, r.advisory_repo, self.state_dir)
                for r in self.policy.flags
                if r.advisories is not None
            }
        return self._advisories

    def plan(
        self,
        series: list[str] | None = None,
        *,
        on_series: Callable[[str, int, int], None] | None = None,
    ) -> Plan:
        problems = self.semantic_problems()
        if problems:
            raise PolicyError([f"policy: {'.'.join(map(str, loc))}: {m}" for loc, m in problems])
        wanted = [self.policy.get_series(n) for n in series] if series else self.policy.series
        selector = self.selector()
        picker = self.picker()
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
            | set(getattr(self, "queue_problems", []))
            | set(self._issues.warnings if self._issues is not None else [])
        )
        stats: JSONDoc = dict(self.index.stats)
        stats.update({f"picks_{k}": v for k, v in picker.stats.items()})
        stats.update({f"prerequisite_{k}": v for k, v in finder.stats.items()})
        # Where a plan's time goes (bench/eol_lines.py reports it): selection (scanning and
        # flagging the windows), picks, applicability's verdicts, the prerequisite search.
        stats.update({f"seconds_{k}": round(v, 3) for k, v in self.seconds.items()})
        if self._issues is not None:
            stats["issue_searches"] = self._issues.asked
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
        tip = sel.tip_sha
        fixes: list[PlannedFix] = []
        pending = [c for c in sel.candidates if c.state == FixState.PENDING]
        done = 0
        by_key: dict[str, PlannedFix] = {}
        for cand in sel.candidates:
            if cand.state != FixState.PENDING:
                fixes.append(by_key.setdefault(cand.fix.key, PlannedFix(cand)))
                continue
            pf = self._plan_fix(sel, cand, picker, finder, tip, by_key)
            fixes.append(pf)
            by_key.setdefault(cand.fix.key, pf)
            if pf.chosen is not None and pf.chosen.result.outcome == "clean" and pf.applies:
                assert pf.chosen.result.commit is not None
                tip = pf.chosen.result.commit
            done += 1
            if on_series is not None:
                on_series(sel.series.name, done, len(pending))
        return SeriesPlan(selection=sel, fixes=fixes, final_tip=tip)

    def _plan_fix(
        self,
        sel: SeriesSelection,
        cand: Candidate,
        picker: Picker,
        finder: PrerequisiteFinder,
        tip: str,
        by_key: Mapping[str, PlannedFix],
    ) -> PlannedFix:
        """One pending fix onto `tip`: its verdict from the line's code (applicability.py),
        or its pick, with prerequisites when it conflicts."""
        series = sel.series
        judge = self.policy.applicability.skip
        follows_info = ""
        is_code = self.policy.applicability.is_code
        if judge:
            orphan, waits, follows_info = self._orphan(cand, by_key)
            if orphan or waits:
                return PlannedFix(
                    cand,
                    not_applicable=orphan,
                    waits_for=waits,
                    verdict=FOLLOW_UP if orphan else "",
                )
            first = self.index.facts(cand.sources[0].sha) if cand.sources else None
            if first is not None and (v := not_built(series, first.paths, is_code)) is not None:
                return PlannedFix(
                    cand, not_applicable=v.reason, evidence=v.evidence, verdict=v.kind
                )
        start = time.perf_counter()
        with self.index.batch():
            attempts, chosen, note = pick_best(
                picker, cand.sources, tip, self.index, is_code=is_code if judge else None
            )
        self._took("pick", start)
        conflicting = next((a for a in attempts if a.result.outcome == "conflict"), None)
        docs = next((a for a in attempts if a.documentation_only), None)
        if chosen is None and docs is not None and conflicting is None:
            return PlannedFix(
                cand,
                attempts=attempts,
                not_applicable=(
                    f"picked onto {series.stable_branch}, it changes only "
                    f"{', '.join(docs.documentation_only[:3])}: no code of the line is fixed"
                ),
                evidence=tuple(
                    f"{a.source.describe()}: "
                    + ("documentation only" if a.documentation_only else a.result.outcome)
                    for a in attempts
                ),
                verdict=DOCUMENTATION_ONLY,
            )
        if chosen is None and conflicting is not None and judge:
            start = time.perf_counter()
            v = self._judged(series, conflicting.source.sha, tip, sel.searched)
            self._took("applicability", start)
            if v is not None:
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
        prereqs: tuple[Prerequisite, ...] = ()
        report = ""
        info = ""
        if chosen is None and conflicting is not None:
            start = time.perf_counter()
            with self.index.batch():
                chosen, prereqs, report = self._with_prerequisites(finder, sel, cand, attempts, tip)
            self._took("prerequisites", start)
            if chosen is not None:
                note = f"needs {len(prereqs)} upstream commit(s) first: " + ", ".join(
                    p.sha[:10] for p in prereqs
                )
            else:
                info = upstream_note(
                    self.index,
                    cand.fix,
                    series,
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
        """applicability.judge_conflict, remembered in the index: the same source, tip, path
        map and rules give the same verdict (a warm plan of a 3.6.8 line judged 46 conflicts
        again in 1.8 s)."""
        rules = self.policy.applicability
        key = json.dumps(
            [
                VERDICTS_VERSION,
                source,
                tip,
                series.stable_branch,
                series.path_map,
                rules.not_code,
                list(searched),
            ],
            sort_keys=True,
        )
        hit = self.index.memo_get("verdicts", key)
        if isinstance(hit, list):
            if not hit:
                return None
            return Verdict(FixState(hit[0]), hit[1], tuple(hit[2]), hit[3])
        v = judge_conflict(
            self.cache.repo,
            series,
            source=source,
            tip=tip,
            is_code=rules.is_code,
            searched=searched,
        )
        data = [] if v is None else [str(v.state), v.reason, list(v.evidence), v.kind]
        self.index.memo_put("verdicts", key, data)
        return v

    def _took(self, part: str, start: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

    def _orphan(self, cand: Candidate, by_key: Mapping[str, PlannedFix]) -> tuple[str, str, str]:
        """A follow-up and the fixes it follows: (why it is not planned, as every fix it
        follows is excluded or reverted; what it waits for, as one does not apply yet; what
        to tell whoever reviews it, as the fixes it follows do not concern the line). A
        follow-up of a not-applicable fix is judged on its own change, never through the
        fix's verdict: "Ensure libexpat is linked against libm" follows a bundled-expat
        update but changes setup.py. A fix flagged by rules of its own (not only as a
        follow-up) is judged on its own code too."""
        if any(h.rule != FOLLOW_UP_RULE for h in cand.fix.flags):
            return "", "", ""
        reasons = []
        waits = []
        unconcerned = []
        for key in cand.fix.follows_all:
            parent = by_key.get(key)
            if parent is None:
                return "", "", ""
            status = parent.status
            if status == FixState.NOT_APPLICABLE:
                unconcerned.append(f"{key[:10]} ({parent.not_applicable})")
            elif status in (FixState.EXCLUDED, FixState.REVERTED):
                reasons.append(
                    f"a follow-up of {key[:10]}, and it is {status} ({parent.candidate.reason})"
                )
            elif status in (FixState.NEW_CONFLICT, FixState.NEW_ERROR, FixState.WAITING):
                # Not on its own: it completes a fix the line does not have yet. Once that fix
                # is resolved by hand and merged, this one is planned as usual.
                waits.append(f"{key[:10]} ({status})")
            else:
                return "", "", ""  # one of the fixes it follows is on the line, or is coming
        if waits:
            return "", "waits for " + ", ".join(waits) + ", which does not apply yet", ""
        if unconcerned:
            info = (
                "it follows up a fix judged not applicable to the line: "
                + "; ".join(unconcerned)
                + ". Its own change was judged on its own: check the line needs it"
            )
            return "", "", info
        return "; ".join(reasons), "", ""

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


def pick_best(
    picker: Picker,
    sources: list[Source],
    onto: str,
    index: CommitIndex | None = None,
    *,
    is_code: Callable[[str], bool] | None = None,
) -> tuple[list[Attempt], Attempt | None, str]:
    """Try the sources in preference order; the first clean (or empty) pick wins. With
    `is_code`, a clean pick that changes only NEWS and documentation on the line does not
    win (a NEWS-only backport upstream wrote for a branch its code never reached): the next
    source is tried, and with none left no source is chosen."""
    attempts: list[Attempt] = []
    if not sources:
        return attempts, None, "no usable source commit (merge commits only, or missing)"
    for src in sources:
        facts = index.facts(src.sha) if index is not None else None
        paths = facts.paths if facts is not None and not facts.paths_truncated else None
        # The first conflict is the one reported (and judged); a later source only matters
        # if it applies.
        reported = any(a.result.outcome == "conflict" for a in attempts)
        res = picker.pick(src.sha, onto, paths=paths, outcome_only=reported)
        docs: list[str] | None = None
        if is_code is not None and res.outcome == "clean" and res.tree is not None:
            docs = documentation_only(picker.repo, onto, res.tree, is_code)
        attempt = Attempt(src, res, tuple(docs or ()))
        attempts.append(attempt)
        if res.ok and not docs:
            note = ""
            if len(attempts) > 1:
                first = attempts[0]
                how = (
                    "changes only documentation"
                    if first.documentation_only
                    else (f"{first.result.outcome}s")
                )
                note = f"{first.source.describe()} {how}; used {src.describe()}"
            elif res.lever not in (None, "paths"):
                note = f"merged with {res.lever}"
            return attempts, attempt, note
    return attempts, None, f"no source applies with code ({len(attempts)} tried)"
