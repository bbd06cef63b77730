"""Follow-ups: later upstream commits that complete a flagged fix.

A security fix upstream is often not one commit: a test made reliable, a reference cycle the
fix's test introduced, a regression the fix caused, fixed days later under a new issue that
names the old one ("introduced by the fix of GH-108310"). A mirror that takes the fix and not
those ships half a fix. A commit after a flagged fix (in a source window, not before the fix's
first commit) that names one of the fix's commits by SHA, its PR or its issue, and is not
itself part of a flagged fix, is flagged by the rule `follow-up`: the hit names the fix it
follows (`FlagHit.of`) and is security when the fix is.

An issue that many later commits name is an umbrella (a tracking issue, a module's long
cleanup), not one change: past `follow_ups.max_per_fix` distinct later changes, the issue is
not followed and only SHA and PR references count. A commit that is the same change as the fix
(same issue and subject: a hand-made backport without a trailer) is not its follow-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.controller.selection.grouping import UnionFind
from stablectl.controller.selection.model import Candidate, Fix, FlagHit
from stablectl.controller.selection.windows import Order, Window, apply_order, source_windows
from stablectl.gitops.messages import change_subject, own_prs
from stablectl.gitops.scan import CommitFacts, CommitIndex
from stablectl.policy import FOLLOW_UP_RULE, FollowUps


@dataclass(frozen=True)
class _Ref:
    sha: str
    order: Order
    branch: str
    own: bool  # seen on the series' own maintenance branch


class FollowUpFinder:
    """Indexes what the windows' commits name, once per selection, and answers per fix."""

    def __init__(
        self, index: CommitIndex, wins: Iterable[Window], uf: UnionFind, config: FollowUps
    ) -> None:
        self.index = index
        self.uf = uf
        self.config = config
        self.refs: dict[str, list[_Ref]] = {}
        for w, rank in source_windows(wins):
            for token, found in w.summary.get("refs", {}).items():
                for sha, pos, when in found:
                    ref = _Ref(sha, apply_order(rank, pos, when), w.branch, w.role == "own")
                    self.refs.setdefault(token, []).append(ref)
        self.commit_tokens = [t for t in self.refs if t.startswith("c-")]

    def find(
        self,
        fixes: Mapping[str, Fix],
        taken: set[str],
        on_branch: dict[str, str],
        *,
        level: int = 0,
    ) -> tuple[dict[str, list[FlagHit]], dict[str, Order]]:
        """Follow-up hits by group root (and each group's place in the apply order) for the
        given fixes; commits in `taken` (already part of a flagged fix) are skipped. Records
        the branch each follow-up was seen on in `on_branch`. At `level` 1 and deeper (the
        fixes are follow-ups themselves) only SHA and PR references count: a follow-up's own
        issue is often a broader one (CVE-2020-10735's int/str follow-up is gh-90716, the
        whole `_pylong` project)."""
        by = {str(b) for b in self.config.by}
        if level > 0:
            by &= {"commit", "pr"}
        hits: dict[str, list[FlagHit]] = {}
        order: dict[str, Order] = {}
        # Oldest fix first: a follow-up naming an issue several fixes share follows the first.
        for fix in sorted(fixes.values(), key=self._first_time):
            for token, ref in self._named(fix, taken, by):
                root = self.uf.find(ref.sha)
                reason = f"follow-up of {fix.key[:10]} ({fix.subject}): names {_show(token)}"
                if not any(h.sha == ref.sha and h.of == fix.key for h in hits.get(root, ())):
                    hits.setdefault(root, []).append(
                        FlagHit(FOLLOW_UP_RULE, ref.sha, reason, fix.security, of=fix.key)
                    )
                if root not in order or ref.own:
                    order[root] = ref.order
                on_branch.setdefault(ref.sha, ref.branch)
        return hits, order

    def _facts(self, fix: Fix) -> list[CommitFacts]:
        return [f for m in fix.members if (f := self.index.facts(m)) is not None]

    def _first_time(self, fix: Fix) -> tuple[int, str]:
        times = [f.commit_time for f in self._facts(fix)]
        return (min(times) if times else 0, fix.key)

    def _named(self, fix: Fix, taken: set[str], by: set[str]) -> list[tuple[str, _Ref]]:
        facts = self._facts(fix)
        if not facts:
            return []
        start = min(f.commit_time for f in facts)
        same = {(i, change_subject(f.info.subject)) for f in facts for i in f.info.issues}

        def later(token: str) -> list[_Ref]:
            out = []
            for ref in self.refs.get(token, ()):
                if ref.sha in taken or ref.order[0] < start:
                    continue
                f = self.index.facts(ref.sha)
                if f is None or any(
                    (i, change_subject(f.info.subject)) in same for i in f.info.issues
                ):
                    continue
                out.append(ref)
            return out

        found: list[tuple[str, _Ref]] = []
        if "commit" in by:
            for m in fix.members:
                for token in self.commit_tokens:
                    if m.startswith(token[2:]):
                        found += [(token, r) for r in later(token)]
        issues, prs = names_of(facts)
        if "pr" in by:
            for token in prs:
                found += [(token, r) for r in later(token)]
        if "issue" in by:
            for issue in issues:
                refs = later(issue)
                if len({self.uf.find(r.sha) for r in refs}) <= self.config.max_per_fix:
                    found += [(issue, r) for r in refs]
        return found


def names_of(facts: Iterable[CommitFacts]) -> tuple[list[str], list[str]]:
    """What names a change in other commits' messages (`messages.references` tokens): its
    issues (gh-N, bpo-N), and its PRs as gh-N (every "(GH-N) (#M)" of its subjects)."""
    facts = list(facts)
    issues = list(dict.fromkeys(i for f in facts for i in f.info.issues))
    prs = sorted({pr for f in facts for pr in own_prs(f.info.subject)})
    return issues, [f"gh-{pr}" for pr in prs]


def _show(token: str) -> str:
    return f"commit {token[2:12]}" if token.startswith("c-") else token


def advisory_follow_ups(
    index: CommitIndex,
    candidates: Sequence[Candidate],
    advisories: Mapping[str, AdvisoryIndex],
    is_code: Callable[[str], bool] = lambda path: True,
) -> list[Candidate]:
    """Fixes an advisory lists together: each follows the advisory's first fix *that changes
    code*, in upstream main's order (the originals' commit times, not the apply order a
    line's own backports give), with a `follow-up` hit saying which advisory, so the release
    waits for all of them. A NEWS clarification or a What's New entry is never the fix others
    follow: bpo-35907's "Clarify the NEWS entry" came before its code fix on 3.6, and made
    the CVE fix a follow-up of a commit that changes no code. `candidates` are in apply
    order and stay so; a fix already following another is left as it is."""
    ids_of: dict[str, list[str]] = {}
    for c in candidates:
        ids: list[str] = []
        for m in c.fix.members:
            f = index.facts(m)
            if f is None:
                continue
            info = f.info
            for idx in advisories.values():
                found = idx.match(m, info.cherry_picked_from, info.issues, info.pr)
                ids += [a.id for a in found[1]] if found else []
        ids_of[c.fix.key] = list(dict.fromkeys(ids))
    first: dict[str, Candidate] = {}
    for c in sorted(candidates, key=lambda c: _main_order(index, c)):
        if not _changes_code(index, c, is_code):
            continue
        for i in ids_of[c.fix.key]:
            first.setdefault(i, c)
    out: list[Candidate] = []
    for c in candidates:
        ids = ids_of[c.fix.key]
        parent = next((first[i] for i in ids if i in first and first[i] is not c), None)
        if parent is None or c.fix.follows is not None:
            out.append(c)
            continue
        if _main_order(index, parent) > _main_order(index, c) and _changes_code(index, c, is_code):
            out.append(c)  # an earlier code fix of the same advisory (each is its own fix)
            continue
        adv = next(i for i in ids if first.get(i) is parent)
        hit = FlagHit(
            FOLLOW_UP_RULE,
            c.fix.members[0],
            f"follow-up of {parent.fix.key[:10]} ({parent.fix.subject}): advisory {adv} lists both",
            parent.fix.security,
            of=parent.fix.key,
        )
        out.append(replace(c, fix=replace(c.fix, flags=[*c.fix.flags, hit])))
    return out


def _main_order(index: CommitIndex, c: Candidate) -> tuple[int, int]:
    """Where the fix's original is in upstream's history (its commit time), before its
    place in the line's apply order."""
    f = index.facts(c.fix.original) if c.fix.original else None
    return (f.commit_time if f is not None else c.order[0], c.order[1])


def _changes_code(index: CommitIndex, c: Candidate, is_code: Callable[[str], bool]) -> bool:
    """Whether any commit of the fix changes a path that is code (not NEWS, not docs)."""
    for m in c.fix.members:
        f = index.facts(m)
        if f is not None and (f.paths_truncated or any(is_code(p) for p in f.paths)):
            return True
    return False
