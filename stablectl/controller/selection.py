"""Selection: which fixes each series needs, from which source, in which order.

A **fix** is one change upstream seen as one thing: the original commit and all its backports
on several branches, linked by `(cherry picked from commit X)` trailers and by the upstream PR
number (``(GH-N)`` / ``(#N)``). Patch-ids link what carries no trailer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pygit2

from stablectl.gitops.scan import CommitFacts, CommitIndex
from stablectl.policy import FlagRule, Policy, Series

FixState = Literal["pending", "applied", "in-base", "reverted", "excluded"]
LabelLookup = Callable[[CommitFacts], set[str]]
NoteLookup = Callable[[str, str], str | None]


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


def evaluate_flags(
    facts: CommitFacts,
    rules: Sequence[FlagRule],
    *,
    labels_of: LabelLookup | None = None,
    note_of: NoteLookup | None = None,
) -> list[FlagHit]:
    """Which rules flag this commit, and why. Conditions in one rule must all match."""
    hits: list[FlagHit] = []
    for rule in rules:
        reasons: list[str] = []
        ok = True
        if rule.commits is not None:
            sha = next((c for c in rule.commits if facts.sha.startswith(c.lower())), None)
            ok = sha is not None
            if ok:
                reasons.append("listed")
        if ok and rule.paths is not None:
            path = next((p for p in facts.paths if rule.path_matches(p)), None)
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
        if ok and rule.labels is not None:
            labels = labels_of(facts) if labels_of else set()
            hit = sorted(labels & set(rule.labels))
            ok = bool(hit)
            if ok:
                reasons.append(f"label {hit[0]}")
        if ok:
            hits.append(FlagHit(rule.name, facts.sha, "; ".join(reasons), rule.security))
    return hits


@dataclass
class Window:
    """Commits of one upstream branch a series considers."""

    branch: str
    shas: list[str]
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
        labels_of: LabelLookup | None = None,
        note_of: NoteLookup | None = None,
    ) -> None:
        self.policy = policy
        self.index = index
        self.upstream_ref = upstream_ref
        self.stable_tip = stable_tip
        self.labels_of = labels_of
        self.note_of = note_of
        self.errors: list[str] = []

    # ------------------------------------------------------------------ windows

    def base_of(self, series: Series) -> str:
        sha = self.upstream_ref(f"refs/tags/{series.base}")
        if sha is None:
            raise KeyError(series.base)
        return sha

    def windows(self, series: Series, base: str) -> list[Window]:
        """Commits of the series' sources (and its siblings' maintenance branches)."""
        since = self._since(series, base)
        out: list[Window] = []
        for i, branch in enumerate(self._branches(series)):
            role: Literal["own", "source", "sibling"] = (
                ("own" if i == 0 else "source") if branch in series.sources else "sibling"
            )
            tip = self.upstream_ref(f"refs/remotes/upstream/{branch}")
            if tip is None:
                self.errors.append(f"series {series.name}: upstream branch {branch!r} not found")
                continue
            hide = [base]
            mb = self.index.merge_base(tip, base)
            if mb:
                hide.append(mb)
            shas = self.index.walk(tip, hide, key=f"upstream/{branch}")
            if role != "own":
                self.index.prefetch(shas)
                shas = [s for s in shas if self._time(s) >= since]
            out.append(Window(branch, shas, role))
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
        ]:
            if b not in out:
                out.append(b)
        return out

    def _since(self, series: Series, base: str) -> int:
        if series.since is not None:
            import datetime as dt

            return int(dt.datetime.combine(series.since, dt.time(), tzinfo=dt.UTC).timestamp())
        return self._time(base) - series.lookback_days * 86400

    def _time(self, sha: str) -> int:
        f = self.index.facts(sha)
        return f.commit_time if f else 0

    # ------------------------------------------------------------------ selection

    def select(self, series: Series) -> SeriesSelection:
        base = self.base_of(series)
        tip = self.stable_tip(series)
        branch_exists = tip is not None
        tip = tip or base
        windows = self.windows(series, base)
        index = self.index
        on_branch: dict[str, str] = {}
        for w in windows:
            for s in w.shas:
                on_branch.setdefault(s, w.branch)
        stable_shas = index.walk(tip, [base], key=f"stable/{series.stable_branch}")
        # The maintenance branch's own commits before the base tag: backports already shipped.
        pre_base: list[str] = []
        main_tip = self.upstream_ref(f"refs/remotes/upstream/{self.policy.upstream.main}")
        if main_tip:
            mb = index.merge_base(main_tip, base)
            if mb and mb != base:
                pre_base = index.walk(base, [mb], key=f"pre-base/{series.base}")
        index.prefetch(stable_shas + pre_base)

        uf = _UnionFind()
        by_pr: dict[int, str] = {}
        all_shas = [s for w in windows for s in w.shas] + stable_shas + pre_base
        index.prefetch(all_shas)
        with index.batch():
            for sha in all_shas:
                f = index.facts(sha)
                if f is None:
                    continue
                self._link(uf, by_pr, f)

        candidate_windows = [w for w in windows if w.role != "sibling"]
        flagged: dict[str, list[FlagHit]] = {}
        order: dict[str, tuple[int, int]] = {}
        with index.batch():
            for wi, w in enumerate(candidate_windows):
                for pos, sha in enumerate(w.shas):
                    f = index.facts(sha)
                    if f is None or len(f.parents) > 1:
                        continue
                    if f.error:
                        self.errors.append(f"{series.name}: {f.error}")
                    hits = evaluate_flags(
                        f, self.policy.flags, labels_of=self.labels_of, note_of=self.note_of
                    )
                    if hits:
                        root = uf.find(sha)
                        flagged.setdefault(root, []).extend(hits)
                        if root not in order or w.role == "own":
                            order[root] = (f.commit_time, wi * 10_000_000 + pos)
        groups: dict[str, list[str]] = {}
        for sha in list(uf.parent):
            groups.setdefault(uf.find(sha), []).append(sha)

        stable_trailers: set[str] = set()
        stable_prs: set[int] = set()
        for sha in stable_shas:
            f = index.facts(sha)
            if f is not None:
                stable_trailers.update(f.info.cherry_picked_from)
                stable_trailers.add(sha)
                if f.info.pr is not None:
                    stable_prs.add(f.info.pr)
        pre_base_set = set(pre_base)
        # Reverts: a fix is reverted if a revert of one of its members is not reverted itself.
        reverted_by: dict[str, list[str]] = {}
        for sha in [s for w in candidate_windows for s in w.shas]:
            f = index.facts(sha)
            if f is not None:
                for target in f.info.reverts:
                    reverted_by.setdefault(uf.find(_full(index, target)), []).append(uf.find(sha))

        def is_reverted(root: str, depth: int = 0) -> bool:
            if depth > 20:
                return False
            return any(not is_reverted(r, depth + 1) for r in reverted_by.get(root, ()))

        excluded = {e.sha.lower(): e.reason for e in self.policy.exclude}
        candidates: list[Candidate] = []
        for root, hits in flagged.items():
            members = sorted(set(groups.get(root, [root])))
            fix = self._fix(root, members, hits)
            # Revert commits are not fixes of their own here.
            if all((index.facts(m) or _NOFACTS).info.reverts for m in members if index.facts(m)):
                continue
            cand = Candidate(fix, "pending", "", order=order.get(root, (0, 0)))
            every = set(fix.members) | ({fix.key} if fix.key else set())
            ex = next((r for s, r in excluded.items() for m in every if m.startswith(s)), None)
            if ex is not None:
                cand.state, cand.reason = "excluded", ex
            elif every & stable_trailers:
                hit = sorted(every & stable_trailers)[0]
                cand.state, cand.reason = "applied", f"trailer names {hit[:10]}"
            elif fix.pr is not None and fix.pr in stable_prs:
                cand.state, cand.reason = "applied", f"GH-{fix.pr} is on the stable branch"
            elif every & pre_base_set:
                hit = sorted(every & pre_base_set)[0]
                cand.state, cand.reason = "in-base", f"{hit[:10]} is in {series.base}"
            elif (anc := self._in_base(every, base, on_branch)) is not None:
                cand.state, cand.reason = "in-base", f"{anc[:10]} is in {series.base}"
            elif is_reverted(root):
                cand.state, cand.reason = "reverted", "reverted upstream"
            else:
                pid_hit = self._patch_id_match(fix, stable_shas, pre_base)
                if pid_hit is not None:
                    where = "in " + series.base if pid_hit in pre_base_set else "applied"
                    cand.state = "in-base" if pid_hit in pre_base_set else "applied"
                    cand.reason = f"same patch-id as {pid_hit[:10]} ({where}, no trailer)"
            cand.sources = self._sources(series, fix, on_branch, windows)
            candidates.append(cand)
        candidates.sort(key=lambda c: c.order)
        return SeriesSelection(series, base, tip, branch_exists, candidates, list(self.errors))

    def _link(self, uf: _UnionFind, by_pr: dict[int, str], f: CommitFacts) -> None:
        uf.find(f.sha)
        for src in f.info.cherry_picked_from:
            uf.union(_full(self.index, src), f.sha)
        if f.info.pr is not None and not f.info.reverts:
            other = by_pr.setdefault(f.info.pr, f.sha)
            if other != f.sha:
                uf.union(other, f.sha)

    def _fix(self, root: str, members: list[str], hits: list[FlagHit]) -> Fix:
        facts = [f for m in members if (f := self.index.facts(m)) is not None]
        named = {s for f in facts for s in f.info.cherry_picked_from}
        originals = [f for f in facts if not f.info.cherry_picked_from]
        original = originals[0].sha if originals else None
        if original is None:
            # A trailer names a commit the cache does not have (a private or deleted branch).
            chain = [_full(self.index, s) for f in facts for s in f.info.cherry_picked_from]
            key = chain[0] if chain else root
        else:
            key = original
        main = next((f for f in facts if f.sha == original), facts[0] if facts else None)
        issues: list[str] = []
        cves: list[str] = []
        pr = None
        for f in facts:
            issues += [i for i in f.info.issues if i not in issues]
            cves += [c for c in f.info.cves if c not in cves]
            pr = pr or f.info.pr
        del named
        seen: set[tuple[str, str]] = set()
        uniq = []
        for h in hits:
            if (h.rule, h.sha) not in seen:
                seen.add((h.rule, h.sha))
                uniq.append(h)
        subject = main.info.subject if main else ""
        return Fix(key, members, original, subject, issues, pr, cves, uniq)

    def _in_base(self, every: Iterable[str], base: str, on_branch: dict[str, str]) -> str | None:
        for m in sorted(every):
            if m in on_branch:
                continue  # walked windows exclude the base by construction
            if self.index.exists(m) and self.index.is_ancestor(m, base):
                return m
        return None

    def _patch_id_match(self, fix: Fix, stable_shas: list[str], pre_base: list[str]) -> str | None:
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
        for sha in [*stable_shas, *pre_base]:
            f = index.facts(sha)
            if f is None or sha in fix.members or not paths.intersection(f.paths):
                continue
            if index.patch_id(sha) in pids:
                return sha
        return None

    def _sources(
        self, series: Series, fix: Fix, on_branch: dict[str, str], windows: list[Window]
    ) -> list[Source]:
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


_NOFACTS = CommitFacts("", (), "", "", 0, 0, "", ())


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
