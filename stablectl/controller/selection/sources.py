"""Source ranking: which commit of a fix to pick, best first — the series' own maintenance
branch's backport, a newer sibling's backport, the original on main, older siblings'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stablectl.controller.selection.model import Fix, Source, SourceKind
from stablectl.controller.selection.windows import Window
from stablectl.gitops.scan import CommitIndex


def rank_sources(
    index: CommitIndex,
    fix: Fix,
    *,
    on_branch: Mapping[str, str],
    windows: Sequence[Window],
    main: str,
) -> list[Source]:
    branch_rank = {w.branch: i for i, w in enumerate(windows)}
    roles = {w.branch: w.role for w in windows}
    ranked: list[tuple[int, int, Source]] = []
    for m in fix.members:
        f = index.facts(m)
        if f is None or len(f.parents) != 1 or f.info.reverts:
            continue
        b = on_branch.get(m)
        if b is None:
            continue
        role = roles[b]
        kind: SourceKind = (
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
        f = index.facts(fix.original)
        if f is not None and len(f.parents) == 1:
            b = on_branch.get(fix.original) or main
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
