"""Grouping: commits that are one change upstream become one fix.

Commits linked by `(cherry picked from commit X)` trailers are one group (union-find); a
backport without a trailer joins by its upstream PR number; groups that then share a commit
are merged (e.g. an upstream commit and its exported patch without a trailer, both flagged),
and so are flagged groups whose commits name the same issue with the same subject (a backport
made by hand, with a PR of its own and no trailer: 3.10's CVE-2020-10735 fix, #96501, is
main's #96499).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from stablectl.controller.selection.flags import CVE
from stablectl.controller.selection.model import Fix, FlagHit
from stablectl.controller.selection.summaries import Summary, full_sha
from stablectl.gitops.messages import change_subject
from stablectl.gitops.scan import CommitIndex


class UnionFind:
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

    def groups(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), set()).add(x)
        return out


def linked(summaries: Iterable[Summary]) -> UnionFind:
    """Commits linked by trailers, over every summary."""
    uf = UnionFind()
    for summ in summaries:
        for sha, targets in summ["links"].items():
            for t in targets:
                uf.union(t, sha)
    return uf


PRsByBranch = Sequence[tuple[str | None, Mapping[str, tuple[str, int, int]]]]


def merged_groups(
    index: CommitIndex,
    uf: UnionFind,
    *,
    flagged: Mapping[str, list[FlagHit]],
    all_prs: PRsByBranch,
    on_branch: dict[str, str],
) -> tuple[dict[str, list[FlagHit]], dict[str, set[str]], UnionFind]:
    """Flagged groups with their no-trailer backports (same upstream PR number), merged when
    they share a commit. Returns hits and members by merged root, and the merge (to map old
    roots to new). Records where PR-number finds were seen in `on_branch`."""
    groups = uf.groups()
    members_of: dict[str, set[str]] = {}
    for root in flagged:
        members = set(groups.get(root, {root}))
        for m in list(members):
            f = index.facts(m)
            if f is None or f.info.pr is None:
                continue
            for branch, prs in all_prs:
                found = prs.get(str(f.info.pr))
                if found is not None:
                    members.add(found[0])
                    if branch is not None:
                        on_branch.setdefault(found[0], branch)
        members_of[root] = members
    merge = UnionFind()
    owner: dict[str, str] = {}
    for root, members in members_of.items():
        merge.find(root)
        for key in (*members, *_change_keys(index, members)):
            if key in owner:
                merge.union(owner[key], root)
            owner.setdefault(key, root)
    hits: dict[str, list[FlagHit]] = {}
    merged: dict[str, set[str]] = {}
    for root, h in flagged.items():
        top = merge.find(root)
        hits.setdefault(top, []).extend(h)
        merged.setdefault(top, set()).update(members_of[root])
    return hits, merged, merge


def _change_keys(index: CommitIndex, members: Iterable[str]) -> set[str]:
    """`issue|subject` for each member naming an issue: the same change on every branch."""
    keys: set[str] = set()
    for m in members:
        f = index.facts(m)
        if f is None or not f.info.issues or f.info.reverts:
            continue
        subject = change_subject(f.info.subject)
        keys.update(f"{issue}|{subject}" for issue in f.info.issues)
    return keys


def make_fix(index: CommitIndex, root: str, members: list[str], hits: list[FlagHit]) -> Fix:
    """The fix a group is: keyed by its original on main (or the commit its trailers name),
    with the issues, PR, CVEs and flags of all its members."""
    facts = [f for m in members if (f := index.facts(m)) is not None]
    originals = [f for f in facts if not f.info.cherry_picked_from]
    main_branch_originals = [f for f in originals if not f.info.branch_prefix]
    candidates = main_branch_originals or originals
    pick = candidates[0] if candidates else None
    if pick is not None:
        key = pick.sha
    else:
        # A trailer names a commit the cache does not have (a private or deleted branch).
        chain = [full_sha(index, s) for f in facts for s in f.info.cherry_picked_from]
        key = chain[0] if chain else root
    issues: list[str] = []
    cves: list[str] = []
    pr = None
    for f in facts:
        issues += [i for i in f.info.issues if i not in issues]
        cves += [c for c in dict.fromkeys(f.info.cves) if c not in cves]
        pr = pr or f.info.pr
    for h in hits:  # advisories and retitled issues name CVE ids the commits may not
        cves += [c for c in dict.fromkeys(CVE.findall(h.reason)) if c not in cves]
    seen: set[tuple[str, str]] = set()
    uniq = []
    for h in hits:
        if (h.rule, h.sha) not in seen:
            seen.add((h.rule, h.sha))
            uniq.append(h)
    main = pick or (facts[0] if facts else None)
    subject = main.info.subject if main else ""
    original = pick.sha if pick else None
    return Fix(
        key=key,
        members=members,
        original=original,
        subject=subject,
        issues=issues,
        pr=pr,
        cves=cves,
        flags=uniq,
    )
