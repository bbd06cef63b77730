"""Selection: which fixes each series needs, from which source, in which order.

A **fix** is one change upstream seen as one thing: the original commit and all its backports
on several branches, linked by `(cherry picked from commit X)` trailers and by the upstream PR
number (``(GH-N)`` / ``(#N)``). Patch-ids link what carries no trailer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pygit2

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.forge.base import UpstreamIssue
from stablectl.gitops.scan import CommitFacts, CommitIndex
from stablectl.policy import FlagRule, IssuesRule, Policy, Series

FixState = Literal["pending", "applied", "in-base", "reverted", "excluded"]
LabeledPRs = Callable[[str], set[int]]  # label -> upstream PR numbers carrying it
NoteLookup = Callable[[str, str], str | None]
# an issues condition -> the upstream issues its searches found, by number
IssueLookup = Callable[[IssuesRule], Mapping[int, UpstreamIssue]]


def gh_issues(facts: CommitFacts) -> list[int]:
    """The GitHub issue numbers a commit names (`gh-N`; bpo numbers are not GitHub's)."""
    return [int(i[3:]) for i in facts.info.issues if i.startswith("gh-")]


def issue_hit(rule: IssuesRule, facts: CommitFacts, issues: Mapping[int, UpstreamIssue]) -> str:
    """Why one of the issues the commit names matches the condition now ("" if none does)."""
    for n in gh_issues(facts):
        issue = issues.get(n)
        why = rule.matches(issue.title, issue.labels) if issue is not None else None
        if issue is not None and why is not None:
            return f"issue gh-{n} {issue.title!r} ({why})"
    return ""


@dataclass(frozen=True)
class FlagHit:
    rule: str
    sha: str
    reason: str
    security: bool


@dataclass(frozen=True)
class Source:
    """A commit a fix could be picked from, and why it ranks where it does."""

    sha: str
    kind: Literal["own-backport", "sibling-backport", "original", "other"]
    branch: str | None

    def describe(self) -> str:
        where = f" on {self.branch}" if self.branch else ""
        return f"{self.kind}{where} {self.sha[:10]}"


@dataclass
class Fix:
    key: str  # the original's SHA (or the SHA every trailer of the group points to)
    members: list[str]
    original: str | None  # the original if the cache has it
    subject: str
    issues: list[str]
    pr: int | None
    cves: list[str]
    flags: list[FlagHit] = field(default_factory=list)

    @property
    def security(self) -> bool:
        return any(h.security for h in self.flags)


@dataclass
class Candidate:
    """One flagged fix as seen by one series."""

    fix: Fix
    state: FixState
    reason: str
    sources: list[Source] = field(default_factory=list)
    order: tuple[int, int] = (0, 0)


@dataclass
class SeriesSelection:
    series: Series
    base_sha: str
    tip_sha: str
    branch_exists: bool
    candidates: list[Candidate]
    errors: list[str] = field(default_factory=list)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")


def evaluate_flags(
    facts: CommitFacts,
    rules: Sequence[FlagRule],
    *,
    note_of: NoteLookup | None = None,
    labels: set[str] | None = None,
    advisories: Mapping[str, AdvisoryIndex] | None = None,
    issues: IssueLookup | None = None,
) -> list[FlagHit]:
    """Which rules flag this commit, and why. Conditions in one rule must all match.

    `labels` are the upstream PR's labels and `issues` reads the upstream issues an issues
    condition searches for; None means "not known here": those conditions are then assumed
    to match (an issues condition: if the commit names a `gh-N` issue at all) and left for the
    caller to check (see `Selector`).
    """
    hits: list[FlagHit] = []
    for rule in rules:
        reasons: list[str] = []
        ok = True
        if rule.commits is not None:
            # A listed SHA names a fix: the commit itself, or one whose trailer names it.
            named = (facts.sha, *facts.info.cherry_picked_from)
            sha = next((n for c in rule.commits for n in named if n.startswith(c.lower())), None)
            ok = sha is not None
            if sha is not None:
                reasons.append("listed" if sha == facts.sha else f"backport of listed {sha[:10]}")
        if ok and rule.paths is not None:
            path = next((p for p in facts.written_paths if rule.path_matches(p)), None)
            ok = path is not None
            if ok:
                reasons.append(f"touches {path}")
        if ok and rule.message is not None:
            m = re.search(rule.message, facts.message)
            ok = m is not None
            if m:
                reasons.append(f"message matches {m.group(0)!r}")
        if ok and rule.trailers is not None:
            have = {k.lower(): v for k, v in facts.info.trailers}
            for key, pattern in rule.trailers.items():
                value = have.get(key.lower())
                if value is None or not re.search(pattern, value):
                    ok = False
                    break
                reasons.append(f"{key}: {value}")
        if ok and rule.notes is not None:
            text = note_of(rule.notes.ref, facts.sha) if note_of else None
            m = re.search(rule.notes.match, text) if text else None
            ok = m is not None
            if m:
                reasons.append(f"note {m.group(0)!r}")
        if ok and rule.advisories is not None:
            idx = (advisories or {}).get(rule.name)
            found = (
                idx.match(
                    facts.sha, facts.info.cherry_picked_from, facts.info.issues, facts.info.pr
                )
                if idx is not None
                else None
            )
            ok = found is not None
            if found is not None:
                why, advs = found
                reasons.append("advisory " + ", ".join(a.label() for a in advs) + f": {why}")
        if ok and rule.labels is not None and labels is not None:
            hit = sorted(labels & set(rule.labels))
            ok = bool(hit)
            if ok:
                reasons.append(f"label {hit[0]}")
        if ok and rule.issues is not None:
            if issues is None:
                ok = bool(gh_issues(facts))
            else:
                why = issue_hit(rule.issues, facts, issues(rule.issues))
                ok = bool(why)
                reasons.append(why)
        if ok:
            hits.append(FlagHit(rule.name, facts.sha, "; ".join(reasons), rule.security))
    return hits


# A window summary is plain JSON (cached in sqlite, extended incrementally):
#   n        number of commits folded in
#   meta     sha -> [position, commit time]       for commits with hits, links or reverts
#   hits     sha -> [[rule, reason, security]]    rules without label conditions
#   pending  sha -> [rule names]                  rules whose label condition needs the forge
#   links    sha -> [sha named by "(cherry picked from commit …)"]
#   reverts  sha -> [sha named by "This reverts commit …"]
#   prs      "N" -> [sha, position, commit time]  upstream PR number of each commit
#   paths    path -> [sha]                        (only in summaries of applied ranges)
Summary = dict[str, Any]
SUMMARY_VERSION = 1


def _empty_summary() -> Summary:
    return {
        "n": 0,
        "meta": {},
        "hits": {},
        "pending": {},
        "links": {},
        "reverts": {},
        "prs": {},
        "paths": {},
    }


@dataclass
class Window:
    """Commits of one upstream branch a series considers."""

    branch: str
    summary: Summary
    role: Literal["own", "source", "sibling"]


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
    ) -> None:
        self.policy = policy
        self.index = index
        self.upstream_ref = upstream_ref
        self.stable_tip = stable_tip
        self.labeled_prs = labeled_prs
        self.issues = issues
        self.note_of = note_of
        self.advisories = dict(advisories or {})
        rules = [r.model_dump(mode="json") for r in policy.flags]
        adv = {k: v.digest for k, v in sorted(self.advisories.items())}
        digest = hashlib.sha256(
            json.dumps([SUMMARY_VERSION, rules, notes_tips, adv], sort_keys=True).encode()
        ).hexdigest()
        self.fingerprint = digest[:16]

    # ------------------------------------------------------------------ summaries

    def _fold(self, with_paths: bool) -> Callable[[int, list[str]], Any]:
        index, rules = self.index, self.policy.flags

        def fold(start: int, new: list[str]) -> Summary:
            data = _empty_summary()
            index.prefetch(new)
            with index.batch():
                for pos, sha in enumerate(new, start):
                    data["n"] += 1
                    f = index.facts(sha)
                    if f is None:
                        continue
                    info = f.info
                    interesting = False
                    if len(f.parents) <= 1:
                        hits = evaluate_flags(
                            f, rules, note_of=self.note_of, advisories=self.advisories
                        )
                        static = [
                            [h.rule, h.reason, h.security]
                            for h in hits
                            if not _rule(rules, h.rule).needs_forge
                        ]
                        pending = [h.rule for h in hits if _rule(rules, h.rule).needs_forge]
                        if static and not info.reverts:
                            data["hits"][sha] = static
                            interesting = True
                        if pending and not info.reverts:
                            data["pending"][sha] = pending
                            interesting = True
                        if info.pr is not None and not info.reverts:
                            data["prs"].setdefault(str(info.pr), [sha, pos, f.commit_time])
                    if info.cherry_picked_from:
                        data["links"][sha] = [_full(index, x) for x in info.cherry_picked_from]
                        interesting = True
                    if info.reverts:
                        data["reverts"][sha] = [_full(index, x) for x in info.reverts]
                        interesting = True
                    if interesting:
                        data["meta"][sha] = [pos, f.commit_time]
                    if with_paths:
                        for p in f.paths:
                            data["paths"].setdefault(p, []).append(sha)
            return data

        return fold

    def summary(self, key: str, tip: str, hide: list[str], with_paths: bool = False) -> Summary:
        return dict(
            self.index.range_data(
                f"summary/{self.fingerprint}/{key}",
                tip,
                hide,
                self._fold(with_paths),
                _merge_summaries,
            )
        )

    # ------------------------------------------------------------------ windows

    def base_of(self, series: Series) -> str:
        sha = self.upstream_ref(f"refs/tags/{series.base}")
        if sha is None:
            raise KeyError(series.base)
        return sha

    def windows(self, series: Series, base: str, errors: list[str]) -> list[Window]:
        """Summaries of the series' sources (and its siblings' maintenance branches).

        Each window holds the branch's commits that the base tag does not have; for a branch
        other than main, only its own commits (not main's history since it branched).
        """
        main = self.policy.upstream.main
        main_tip = self.upstream_ref(f"refs/remotes/upstream/{main}")
        out: list[Window] = []
        for i, branch in enumerate(self._branches(series)):
            role: Literal["own", "source", "sibling"] = (
                ("own" if i == 0 else "source") if branch in series.all_sources else "sibling"
            )
            tip = self.upstream_ref(f"refs/remotes/upstream/{branch}")
            if tip is None:
                errors.append(f"series {series.name}: upstream branch {branch!r} not found")
                continue
            hide = [base]
            mb = self.index.merge_base(tip, base)
            if mb:
                hide.append(mb)
            if branch != main and main_tip is not None:
                fork_point = self.index.merge_base(tip, main_tip)
                if fork_point:
                    hide.append(fork_point)
            out.append(Window(branch, self.summary(f"upstream/{branch}", tip, hide), role))
        return out

    def _branches(self, series: Series) -> list[str]:
        """Source preference: the series' own maintenance branch, newer siblings' branches
        (nearest first), the remaining sources (main: the original), older siblings'."""
        key = _version_key(series.name)
        siblings = [s for s in self.policy.series if s.name != series.name]
        newer = sorted(
            (s for s in siblings if _version_key(s.name) > key), key=lambda s: _version_key(s.name)
        )
        older = sorted(
            (s for s in siblings if _version_key(s.name) <= key),
            key=lambda s: _version_key(s.name),
            reverse=True,
        )
        out: list[str] = []
        for b in [
            series.sources[0],
            *(s.sources[0] for s in newer),
            *series.sources[1:],
            *(s.sources[0] for s in older),
            *series.all_sources[len(series.sources) :],  # its patch queue, last
        ]:
            if b not in out:
                out.append(b)
        return out

    def _since(self, series: Series, base: str) -> int:
        if series.since is not None:
            return int(dt.datetime.combine(series.since, dt.time(), tzinfo=dt.UTC).timestamp())
        return self._time(base) - series.lookback_days * 86400

    def _time(self, sha: str) -> int:
        f = self.index.facts(sha)
        return f.commit_time if f else 0

    # ------------------------------------------------------------------ selection

    def select(self, series: Series) -> SeriesSelection:
        index = self.index
        errors: list[str] = []
        base = self.base_of(series)
        tip = self.stable_tip(series)
        branch_exists = tip is not None
        tip = tip or base
        since = self._since(series, base)
        windows = self.windows(series, base, errors)
        candidate_windows = [w for w in windows if w.role != "sibling"]
        # Which window each commit of interest was seen in (PR-number finds are added below).
        on_branch: dict[str, str] = {}
        for w in windows:
            for sha in w.summary["meta"]:
                on_branch.setdefault(sha, w.branch)

        # What the stable branch and the base already carry.
        stable = self.summary(f"stable/{series.stable_branch}", tip, [base], with_paths=True)
        stable_shas = set(stable["meta"]) | {v[0] for v in stable["prs"].values()}
        pre_base: Summary = _empty_summary()
        main_tip = self.upstream_ref(f"refs/remotes/upstream/{self.policy.upstream.main}")
        if main_tip:
            mb = index.merge_base(main_tip, base)
            if mb and mb != base:
                pre_base = self.summary(f"pre-base/{series.base}", base, [mb], with_paths=True)

        # Fixes: commits linked by trailers are one fix.
        uf = _UnionFind()
        for summ in [*(w.summary for w in windows), stable, pre_base]:
            for sha, targets in summ["links"].items():
                for t in targets:
                    uf.union(t, sha)

        flagged: dict[str, list[FlagHit]] = {}
        order: dict[str, tuple[int, int]] = {}
        labeled: dict[str, set[int]] = {}
        for wi, w in enumerate(candidate_windows):
            summ = w.summary
            prs_of = {v[0]: int(k) for k, v in summ["prs"].items()} if summ["pending"] else {}
            shas = set(summ["hits"]) | set(summ["pending"])
            for sha in shas:
                pos, when = summ["meta"][sha]
                if w.role != "own" and when < since:
                    continue
                hits = [
                    FlagHit(r, sha, reason, sec) for r, reason, sec in summ["hits"].get(sha, [])
                ]
                for rname in summ["pending"].get(sha, []):
                    rule = _rule(self.policy.flags, rname)
                    why = []
                    if rule.labels is not None:
                        pr = prs_of.get(sha)
                        for label in rule.labels if pr is not None else ():
                            if label not in labeled:
                                labeled[label] = (
                                    self.labeled_prs(label) if self.labeled_prs else set()
                                )
                            if pr in labeled[label]:
                                why.append(f"label {label}")
                                break
                        else:
                            continue
                    if rule.issues is not None:
                        facts = self.index.facts(sha)
                        hit = (
                            issue_hit(rule.issues, facts, self.issues(rule.issues))
                            if facts is not None and self.issues is not None
                            else ""
                        )
                        if not hit:
                            continue
                        why.append(hit)
                    hits.append(FlagHit(rname, sha, "; ".join(why), rule.security))
                if not hits:
                    continue
                root = uf.find(sha)
                flagged.setdefault(root, []).extend(hits)
                key = (when, wi * 10_000_000 + pos)
                if root not in order or w.role == "own":
                    order[root] = key
        for kind, lookup, field_ in (
            ("label", self.labeled_prs, "labels"),
            ("issue", self.issues, "issues"),
        ):
            names = [r.name for r in self.policy.flags if getattr(r, field_)]
            if lookup is None and names:
                errors.append(f"{kind} rules need the forge: {', '.join(names)} not evaluated")

        groups: dict[str, set[str]] = {}
        for sha in list(uf.parent):
            groups.setdefault(uf.find(sha), set()).add(sha)
        # No-trailer backports: the same upstream PR number is the same fix.
        all_prs: list[tuple[str | None, dict[str, list[Any]]]] = [
            (w.branch, w.summary["prs"]) for w in windows
        ] + [(None, stable["prs"]), (None, pre_base["prs"])]
        reverted_by: dict[str, list[str]] = {}
        for w in candidate_windows:
            for sha, targets in w.summary["reverts"].items():
                for t in targets:
                    reverted_by.setdefault(uf.find(t), []).append(uf.find(sha))

        def is_reverted(root: str, depth: int = 0) -> bool:
            if depth > 20:
                return False
            return any(not is_reverted(r, depth + 1) for r in reverted_by.get(root, ()))

        excluded = {e.sha.lower(): e.reason for e in self.policy.exclude}
        stable_named = {t for targets in stable["links"].values() for t in targets}
        pre_base_known = set(pre_base["meta"]) | {v[0] for v in pre_base["prs"].values()}
        base_time = self._time(base)
        candidates: list[Candidate] = []
        # Members of each flagged group, with no-trailer backports found by PR number; groups
        # that then share a commit are one fix (e.g. an upstream commit and its exported patch
        # without a trailer, both flagged).
        members_of: dict[str, set[str]] = {}
        for root in flagged:
            members = set(groups.get(root, {root}))
            for m in list(members):
                f = index.facts(m)
                if f is not None and f.info.pr is not None:
                    for branch, prs in all_prs:
                        found = prs.get(str(f.info.pr))
                        if found is not None:
                            members.add(found[0])
                            if branch is not None:
                                on_branch.setdefault(found[0], branch)
            members_of[root] = members
        merge = _UnionFind()
        owner: dict[str, str] = {}
        for root, members in members_of.items():
            merge.find(root)
            for m in members:
                if m in owner:
                    merge.union(owner[m], root)
                owner.setdefault(m, root)
        merged_hits: dict[str, list[FlagHit]] = {}
        merged_members: dict[str, set[str]] = {}
        for root, hits in flagged.items():
            top = merge.find(root)
            merged_hits.setdefault(top, []).extend(hits)
            merged_members.setdefault(top, set()).update(members_of[root])
            if root in order:
                order[top] = min(order.get(top, order[root]), order[root])
        for root, hits in merged_hits.items():
            members = merged_members[root]
            fix = self._fix(root, sorted(members), hits)
            cand = Candidate(fix, "pending", "", order=order.get(root, (0, 0)))
            every = set(fix.members) | {fix.key}
            ex = next((r for s, r in excluded.items() for m in every if m.startswith(s)), None)
            if ex is not None:
                cand.state, cand.reason = "excluded", ex
            elif every & stable_named:
                hit = sorted(every & stable_named)[0]
                cand.state, cand.reason = "applied", f"trailer names {hit[:10]}"
            elif every & stable_shas:
                hit = sorted(every & stable_shas)[0]
                cand.state, cand.reason = "applied", f"{hit[:10]} is on the stable branch"
            elif every & pre_base_known:
                hit = sorted(every & pre_base_known)[0]
                cand.state, cand.reason = "in-base", f"{hit[:10]} is in {series.base}"
            elif (anc := self._in_base(every, base, base_time, on_branch)) is not None:
                cand.state, cand.reason = "in-base", f"{anc[:10]} is in {series.base}"
            elif is_reverted(root):
                cand.state, cand.reason = "reverted", "reverted upstream"
            else:
                pid_hit = self._patch_id_match(fix, stable, pre_base)
                if pid_hit is not None:
                    in_base = pid_hit in pre_base["meta"] or _in_paths(pid_hit, pre_base)
                    cand.state = "in-base" if in_base else "applied"
                    where = f"in {series.base}" if in_base else "applied"
                    cand.reason = f"same patch-id as {pid_hit[:10]} ({where}, no trailer)"
            cand.sources = self._sources(fix, on_branch, windows)
            candidates.append(cand)
        candidates.sort(key=lambda c: c.order)
        return SeriesSelection(series, base, tip, branch_exists, candidates, errors)

    def _fix(self, root: str, members: list[str], hits: list[FlagHit]) -> Fix:
        facts = [f for m in members if (f := self.index.facts(m)) is not None]
        originals = [f for f in facts if not f.info.cherry_picked_from]
        main_branch_originals = [f for f in originals if not f.info.branch_prefix]
        candidates = main_branch_originals or originals
        pick = candidates[0] if candidates else None
        if pick is not None:
            key = pick.sha
        else:
            # A trailer names a commit the cache does not have (a private or deleted branch).
            chain = [_full(self.index, s) for f in facts for s in f.info.cherry_picked_from]
            key = chain[0] if chain else root
        issues: list[str] = []
        cves: list[str] = []
        pr = None
        for f in facts:
            issues += [i for i in f.info.issues if i not in issues]
            cves += [c for c in dict.fromkeys(f.info.cves) if c not in cves]
            pr = pr or f.info.pr
        for h in hits:  # advisories and retitled issues name CVE ids the commits may not
            cves += [c for c in dict.fromkeys(_CVE.findall(h.reason)) if c not in cves]
        seen: set[tuple[str, str]] = set()
        uniq = []
        for h in hits:
            if (h.rule, h.sha) not in seen:
                seen.add((h.rule, h.sha))
                uniq.append(h)
        main = pick or (facts[0] if facts else None)
        subject = main.info.subject if main else ""
        original = pick.sha if pick else None
        return Fix(key, members, original, subject, issues, pr, cves, uniq)

    def _in_base(
        self, every: Iterable[str], base: str, base_time: int, on_branch: dict[str, str]
    ) -> str | None:
        for m in sorted(every):
            if m in on_branch:
                continue  # windows exclude the base by construction
            f = self.index.facts(m)
            # A commit made after the base tag cannot be in it (a day of clock skew allowed).
            if f is None or f.commit_time > base_time + 86400:
                continue
            if self.index.is_ancestor(m, base):
                return m
        return None

    def _patch_id_match(self, fix: Fix, stable: Summary, pre_base: Summary) -> str | None:
        index = self.index
        paths: set[str] = set()
        pids: set[str] = set()
        for m in fix.members:
            f = index.facts(m)
            if f is None or len(f.parents) != 1:
                continue
            paths.update(f.paths)
            pid = index.patch_id(m)
            if pid:
                pids.add(pid)
        if not pids:
            return None
        others: set[str] = set()
        for summ in (stable, pre_base):
            for p in paths:
                others.update(summ["paths"].get(p, ()))
        for sha in sorted(others - set(fix.members)):
            if index.patch_id(sha) in pids:
                return sha
        return None

    def _sources(self, fix: Fix, on_branch: dict[str, str], windows: list[Window]) -> list[Source]:
        branch_rank = {w.branch: i for i, w in enumerate(windows)}
        roles = {w.branch: w.role for w in windows}
        ranked: list[tuple[int, int, Source]] = []
        for m in fix.members:
            f = self.index.facts(m)
            if f is None or len(f.parents) != 1 or f.info.reverts:
                continue
            b = on_branch.get(m)
            if b is None:
                continue
            role = roles[b]
            kind: Literal["own-backport", "sibling-backport", "original", "other"] = (
                "own-backport"
                if role == "own"
                else "sibling-backport"
                if role == "sibling"
                else "original"
                if m == fix.original
                else "other"
            )
            ranked.append((branch_rank[b], -f.commit_time, Source(m, kind, b)))
        if fix.original and fix.original not in {s.sha for _, _, s in ranked}:
            f = self.index.facts(fix.original)
            if f is not None and len(f.parents) == 1:
                b = on_branch.get(fix.original) or self.policy.upstream.main
                rank = branch_rank.get(b, len(branch_rank))
                ranked.append((rank, -f.commit_time, Source(fix.original, "original", b)))
        ranked.sort(key=lambda t: (t[0], t[1]))
        seen: set[str] = set()
        out: list[Source] = []
        for _, _, src in ranked:
            if src.sha not in seen:
                seen.add(src.sha)
                out.append(src)
        return out


def _merge_summaries(chunks: list[Summary]) -> Summary:
    """Chunks of one range, oldest first, as one summary."""
    if len(chunks) == 1:
        return chunks[0]
    out = _empty_summary()
    for c in chunks:
        out["n"] += c["n"]
        for k in ("meta", "hits", "pending", "links", "reverts"):
            out[k].update(c[k])
        for pr, v in c["prs"].items():
            out["prs"].setdefault(pr, v)
        for path, shas in c["paths"].items():
            out["paths"].setdefault(path, []).extend(shas)
    return out


def _in_paths(sha: str, summ: Summary) -> bool:
    return any(sha in shas for shas in summ["paths"].values())


def _rule(rules: Sequence[FlagRule], name: str) -> FlagRule:
    return next(r for r in rules if r.name == name)


def _full(index: CommitIndex, sha: str) -> str:
    """Expand an abbreviated SHA if the repository knows it."""
    if len(sha) == 40:
        return sha
    try:
        return str(index.repo.revparse_single(sha).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return sha


def _version_key(name: str) -> tuple[tuple[int, str], ...]:
    parts = re.split(r"[.\-_]", name)
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)
