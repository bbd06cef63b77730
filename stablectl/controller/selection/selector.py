"""The selector: per series, the flagged fixes, each with its state and ranked sources, in the
order they must apply. It ties the other modules of this package together."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.controller.selection.flags import (
    ForgeConditions,
    IssueLookup,
    LabeledPRs,
    NoteLookup,
)
from stablectl.controller.selection.followups import FollowUpFinder, advisory_follow_ups
from stablectl.controller.selection.grouping import (
    PRsByBranch,
    UnionFind,
    linked,
    make_fix,
    merged_groups,
)
from stablectl.controller.selection.model import Candidate, Fix, FlagHit, SeriesSelection
from stablectl.controller.selection.sources import rank_sources
from stablectl.controller.selection.states import (
    Known,
    Reverts,
    fix_state,
    patch_ids_needed,
    state_without_patch_ids,
)
from stablectl.controller.selection.summaries import (
    SUMMARY_VERSION,
    Folder,
    Summary,
    empty_summary,
    merge_summaries,
)
from stablectl.controller.selection.windows import (
    Order,
    Window,
    apply_order,
    end_sources,
    since,
    source_windows,
    windows,
)
from stablectl.gitops.cache import UPSTREAM_TAGS
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Policy, Series

FOLLOW_UP_DEPTH = 2  # follow-ups of follow-ups, and no further


@dataclass(frozen=True)
class _Flagged:
    hits: dict[str, list[FlagHit]]  # group root -> hits
    order: dict[str, Order]


class Selector:
    """Builds, per series, the list of flagged fixes and their state."""

    def __init__(
        self,
        policy: Policy,
        index: CommitIndex,
        *,
        upstream_ref: Callable[[str], str | None],
        stable_tip: Callable[[Series], str | None],
        labeled_prs: LabeledPRs | None = None,
        issues: IssueLookup | None = None,
        note_of: NoteLookup | None = None,
        notes_tips: str = "",
        advisories: Mapping[str, AdvisoryIndex] | None = None,
        carries: Callable[[Series, str], bool] | None = None,
        upstream_branches: Callable[[], list[str]] | None = None,
    ) -> None:
        self.policy = policy
        # Whether a stable commit carries the upstream change its trailer names (the mirror's
        # own claim is never enough to count a fix applied).
        self.carries = carries
        self.upstream_branches = upstream_branches
        self.index = index
        self.upstream_ref = upstream_ref
        self.stable_tip = stable_tip
        self.labeled_prs = labeled_prs
        self.issues = issues
        self.advisories = dict(advisories or {})
        self.folder = Folder(index, policy.flags, note_of=note_of, advisories=self.advisories)
        rules = [r.model_dump(mode="json") for r in policy.flags]
        adv = {k: v.digest for k, v in sorted(self.advisories.items())}
        digest = hashlib.sha256(
            json.dumps([SUMMARY_VERSION, rules, notes_tips, adv], sort_keys=True).encode()
        ).hexdigest()
        self.fingerprint = digest[:16]
        # Where selection's time goes: "scan" reads the windows' history (each range folded
        # once: messages, changed paths, the flag rules per commit), "flag" makes the fixes
        # (grouping, follow-ups, patch-ids, states).
        self.seconds: dict[str, float] = {"scan": 0.0, "flag": 0.0}

    def summary(
        self,
        key: str,
        tip: str,
        hide: list[str],
        with_paths: bool = False,
        with_issues: bool = False,
    ) -> Summary:
        data: Summary = self.index.range_data(
            f"summary/{self.fingerprint}/{key}" + ("+issues" if with_issues else ""),
            tip,
            hide,
            fold=self.folder.fold(with_paths, with_issues),
            merge=merge_summaries,
        )
        return data.copy()

    def base_of(self, series: Series) -> str:
        sha = self.upstream_ref(f"{UPSTREAM_TAGS}{series.base}")
        if sha is None:
            raise KeyError(series.base)
        return sha

    def select(self, series: Series) -> SeriesSelection:
        started = time.perf_counter()
        errors: list[str] = []
        base = self.base_of(series)
        tip = self.stable_tip(series)
        branch_exists = tip is not None
        tip = tip or base
        ended = self.ended_sources(series)
        wins = windows(
            self.policy,
            self.index,
            series,
            base,
            upstream_ref=self.upstream_ref,
            summary_of=self.summary,
            errors=errors,
            ended=ended,
        )
        # Which window each commit of interest was seen in (PR-number finds are added later).
        on_branch: dict[str, str] = {}
        for w in wins:
            for sha in w.summary["meta"]:
                on_branch.setdefault(sha, w.branch)
        known = self._known(series, base, tip)
        scanned = time.perf_counter()
        self.seconds["scan"] += scanned - started
        uf = linked([*(w.summary for w in wins), known.proven_stable, known.pre_base])
        conditions = ForgeConditions(self.policy.flags, self.labeled_prs, self.issues)
        flagged = self._flagged(series, base, wins=wins, uf=uf, conditions=conditions)
        errors += conditions.missing()
        # PR numbers find no-trailer backports upstream; never on the stable branch, where a
        # subject ending in "(#N)" is only a claim (a fix is applied there when a trailer names
        # it, which verify checks by re-picking, or by its patch).
        all_prs = [(w.branch, w.summary["prs"]) for w in wins] + [
            (None, known.pre_base["prs"]),
        ]
        hits, members, fixes, order = self._fixes(flagged, wins, uf, all_prs, on_branch)
        candidates = self._candidates(hits, members, fixes, order, known, wins, uf, on_branch)
        self.seconds["flag"] += time.perf_counter() - scanned
        return SeriesSelection(
            series=series,
            base_sha=base,
            tip_sha=tip,
            branch_exists=branch_exists,
            candidates=candidates,
            errors=errors,
            own_backports=tuple(
                t for w in wins if w.role == "own" for ts in w.summary["links"].values() for t in ts
            ),
            own_issues=frozenset(i for w in wins if w.role == "own" for i in w.summary["issues"]),
            searched=tuple(w.branch for w in wins if w.role != "sibling"),
        )

    def _fixes(
        self,
        flagged: _Flagged,
        wins: list[Window],
        uf: UnionFind,
        all_prs: PRsByBranch,
        on_branch: dict[str, str],
    ) -> tuple[dict[str, list[FlagHit]], dict[str, set[str]], dict[str, Fix], dict[str, Order]]:
        """The flagged commits grouped into fixes, with their follow-ups (found in rounds, up
        to FOLLOW_UP_DEPTH): each group's flag hits, members, the fix, and its apply order
        (a group's earliest)."""
        flag_hits = dict(flagged.hits)
        flag_order = dict(flagged.order)
        finder = FollowUpFinder(self.index, wins, uf, self.policy.follow_ups)
        followed: set[str] = set()
        for _round in range(FOLLOW_UP_DEPTH + 1):
            hits, members, merge = merged_groups(
                self.index, uf, flagged=flag_hits, all_prs=all_prs, on_branch=on_branch
            )
            fixes = {
                root: make_fix(self.index, root, sorted(members[root]), hits[root])
                for root in hits
                if root not in followed
            }
            if _round == FOLLOW_UP_DEPTH or not fixes or not self.policy.follow_ups.by:
                break
            followed |= set(hits)
            taken = {m for ms in members.values() for m in ms}
            more, more_order = finder.find(fixes, taken, on_branch, level=_round)
            if not more:
                break
            for root, h in more.items():
                flag_hits.setdefault(root, []).extend(h)
                flag_order.setdefault(root, more_order[root])
        order = dict(flag_order)
        for root in flag_hits:
            if root in order:
                top = merge.find(root)
                order[top] = min(order.get(top, order[root]), order[root])
        return hits, members, fixes, order

    def _candidates(
        self,
        hits: dict[str, list[FlagHit]],
        members: dict[str, set[str]],
        fixes: dict[str, Fix],
        order: dict[str, Order],
        known: Known,
        wins: list[Window],
        uf: UnionFind,
        on_branch: dict[str, str],
    ) -> list[Candidate]:
        """Each fix with its state on the line (applied, in the base, reverted, …) and its
        sources best first, in apply order; advisory follow-ups placed after their fix."""
        reverts = self._reverts(wins, uf)
        candidates: list[Candidate] = []
        every = {
            root: fixes.get(root) or make_fix(self.index, root, sorted(members[root]), root_hits)
            for root, root_hits in hits.items()
        }
        # The patch-ids the states will read, computed side by side first.
        self.index.prefetch_patch_ids(
            sha
            for root, fix in every.items()
            if state_without_patch_ids(
                self.index, fix, known, reverted=reverts(root), on_branch=on_branch
            )
            is None
            for sha in patch_ids_needed(self.index, fix, known)
        )
        for root, fix in every.items():
            state, reason = fix_state(
                self.index, fix, known, reverted=reverts(root), on_branch=on_branch
            )
            sources = rank_sources(
                self.index, fix, on_branch=on_branch, windows=wins, main=self.policy.upstream.main
            )
            candidates.append(
                Candidate(
                    fix=fix,
                    state=state,
                    reason=reason,
                    sources=sources,
                    order=order.get(root, (0, 0)),
                )
            )
        candidates.sort(key=lambda c: c.order)
        if "advisory" in self.policy.follow_ups.by and self.advisories:
            candidates = advisory_follow_ups(
                self.index, candidates, self.advisories, self.policy.applicability.is_code
            )
        return candidates

    def ended_sources(self, series: Series) -> list[str]:
        """The branches read after the series' own upstream branch ended (windows.py)."""
        if series.upstream_end is None:
            return []

        def last_commit(branch: str) -> int | None:
            tip = self.upstream_ref(f"refs/remotes/upstream/{branch}")
            f = self.index.facts(tip) if tip else None
            return f.commit_time if f else None

        branches = self.upstream_branches() if self.upstream_branches else []
        return end_sources(series, self.policy.upstream.main, branches, last_commit)

    def _known(self, series: Series, base: str, tip: str) -> Known:
        """What the stable branch and the base already carry."""
        stable = self.summary(f"stable/{series.stable_branch}", tip, [base], with_paths=True)
        pre_base = empty_summary()
        main_tip = self.upstream_ref(f"refs/remotes/upstream/{self.policy.upstream.main}")
        if main_tip:
            mb = self.index.merge_base(main_tip, base)
            if mb and mb != base:
                pre_base = self.summary(f"pre-base/{series.base}", base, [mb], with_paths=True)
        f = self.index.facts(base)
        carries = self.carries
        unproven = (
            frozenset(sha for sha in stable["links"] if not carries(series, sha))
            if carries is not None
            else frozenset()
        )
        return Known(
            stable=stable,
            pre_base=pre_base,
            base=base,
            base_tag=series.base,
            base_time=f.commit_time if f else 0,
            excluded=self.policy.exclusions,
            unproven=unproven,
        )

    def _flagged(
        self,
        series: Series,
        base: str,
        *,
        wins: list[Window],
        uf: UnionFind,
        conditions: ForgeConditions,
    ) -> _Flagged:
        """Flag hits by group root, and each group's place in the apply order (its own
        branch's commit when it has one). Sources other than the series' own branch count
        from `since` on."""
        oldest = since(self.index, series, base)
        hits: dict[str, list[FlagHit]] = {}
        order: dict[str, Order] = {}
        placed_by_own: set[str] = set()
        for w, rank in source_windows(wins):
            summ = w.summary
            prs_of = {v[0]: int(k) for k, v in summ["prs"].items()} if summ["pending"] else {}
            # Oldest first: a group's place is its earliest commit (of its own branch when it
            # has one there), the same in every process (a set's order is not).
            shas = sorted(
                set(summ["hits"]) | set(summ["pending"]),
                key=lambda s: (summ["meta"][s][1], summ["meta"][s][0], s),
            )
            for sha in shas:
                pos, when = summ["meta"][sha]
                if w.role != "own" and when < oldest:
                    continue
                found = [FlagHit(r, sha, why, sec) for r, why, sec in summ["hits"].get(sha, [])]
                facts = self.index.facts(sha) if summ["pending"].get(sha) else None
                for rname in summ["pending"].get(sha, []):
                    hit = conditions.hit(rname, sha, facts, prs_of.get(sha))
                    if hit is not None:
                        found.append(hit)
                if not found:
                    continue
                root = uf.find(sha)
                hits.setdefault(root, []).extend(found)
                if root not in order or (w.role == "own" and root not in placed_by_own):
                    order[root] = apply_order(rank, pos, when)
                    if w.role == "own":
                        placed_by_own.add(root)
        return _Flagged(hits, order)

    def _reverts(self, wins: list[Window], uf: UnionFind) -> Reverts:
        reverted_by: dict[str, list[str]] = {}
        for w in wins:
            if w.role == "sibling":
                continue
            for sha, targets in w.summary["reverts"].items():
                for t in targets:
                    reverted_by.setdefault(uf.find(t), []).append(uf.find(sha))
        return Reverts(reverted_by)
