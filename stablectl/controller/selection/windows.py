"""Windows: the upstream branches a series considers, in source-preference order, each as the
summary of its commits the base tag does not have."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from stablectl.controller.selection.summaries import Summary
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Policy, Series

WindowRole = Literal["own", "source", "sibling"]
# (cache key, tip, hidden, with_paths, with_issues) -> summary
SummaryOf = Callable[[str, str, list[str], bool, bool], Summary]
UpstreamRef = Callable[[str], str | None]


DAY = 86400
Order = tuple[int, int]  # (commit time, window rank and position): the order fixes apply in


def source_windows(wins: Iterable[Window]) -> Iterator[tuple[Window, int]]:
    """The windows fixes are taken from (not siblings'), each with its rank."""
    return ((w, rank) for rank, w in enumerate(x for x in wins if x.role != "sibling"))


def apply_order(rank: int, pos: int, when: int) -> Order:
    """Where a commit of the window of rank `rank` (at `pos`, committed `when`) applies."""
    return (when, rank * 10_000_000 + pos)


@dataclass(frozen=True)
class Window:
    """Commits of one upstream branch a series considers."""

    branch: str
    summary: Summary
    role: WindowRole


def version_key(name: str) -> tuple[tuple[int, str], ...]:
    parts = re.split(r"[.\-_]", name)
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)


def source_branches(policy: Policy, series: Series, ended: Sequence[str] = ()) -> list[str]:
    """Source preference: the series' own maintenance branch, then (its branch having ended
    upstream) the newer branches `ended` names, newer siblings' branches (nearest first), the
    remaining sources (main: the original), older siblings', its patch queue last."""
    key = version_key(series.name)
    siblings = [s for s in policy.series if s.name != series.name]
    newer = sorted(
        (s for s in siblings if version_key(s.name) > key), key=lambda s: version_key(s.name)
    )
    older = sorted(
        (s for s in siblings if version_key(s.name) <= key),
        key=lambda s: version_key(s.name),
        reverse=True,
    )
    out: list[str] = []
    for b in [
        series.sources[0],
        *ended,
        *(s.sources[0] for s in newer),
        *series.sources[1:],
        *(s.sources[0] for s in older),
        *series.all_sources[len(series.sources) :],
    ]:
        if b not in out:
            out.append(b)
    return out


VERSION_BRANCH = re.compile(r"^\d+(\.\d+)*$")


def end_sources(
    series: Series, main: str, branches: Sequence[str], last_commit: Callable[[str], int | None]
) -> list[str]:
    """Where fixes come from after the series' own upstream branch ended: the policy's
    `upstream_end.sources`, or the `nearest` newer version branches upstream still committed
    to after the end date (nearest first), then main. [] when the branch has not ended."""
    end = series.upstream_end
    if end is None:
        return []
    if end.sources is not None:
        return list(end.sources)
    own = version_key(series.sources[0])
    after = _epoch(end.date)
    newer = sorted(
        (
            b
            for b in branches
            if VERSION_BRANCH.match(b) and version_key(b) > own and (last_commit(b) or 0) > after
        ),
        key=version_key,
    )
    return [*newer[: end.nearest], main]


def windows(
    policy: Policy,
    index: CommitIndex,
    series: Series,
    base: str,
    *,
    upstream_ref: UpstreamRef,
    summary_of: SummaryOf,
    errors: list[str],
    ended: Sequence[str] = (),
) -> list[Window]:
    """Summaries of the series' sources (and its siblings' maintenance branches).

    Each window holds the branch's commits that the base tag does not have; for a branch
    other than main, only its own commits (not main's history since it branched).
    """
    main = policy.upstream.main
    main_tip = upstream_ref(f"refs/remotes/upstream/{main}")
    oldest = since(index, series, base)
    out: list[Window] = []
    for i, branch in enumerate(source_branches(policy, series, ended)):
        role: WindowRole = (
            ("own" if i == 0 else "source")
            if branch in series.all_sources or branch in ended
            else "sibling"
        )
        tip = upstream_ref(f"refs/remotes/upstream/{branch}")
        if tip is None:
            errors.append(f"series {series.name}: upstream branch {branch!r} not found")
            continue
        hide = [base]
        mb = index.merge_base(tip, base)
        if mb:
            hide.append(mb)
        if branch != main and main_tip is not None:
            fork_point = index.merge_base(tip, main_tip)
            if fork_point:
                hide.append(fork_point)
        if role == "source" and (cutoff := index.first_parent_before(tip, oldest - DAY)):
            # Only the history a flag can count: a source other than the own branch counts
            # from `since` on (a 2.7.18 line read main back to 2010 for nothing).
            hide.append(cutoff)
        # The own branch also indexes the issues its commits name (see applicability.py).
        summ = summary_of(f"upstream/{branch}", tip, hide, False, role == "own")
        out.append(Window(branch, summ, role))
    return out


def since(index: CommitIndex, series: Series, base: str) -> int:
    """The oldest commit time a source other than the series' own branch is read from: the
    policy's `since`, else the base tag's date minus `lookback_days`, or the end of the
    series' own upstream branch where that is earlier (2.7 ended on 2020-01-01 and 2.7.18
    was tagged in April: fixes made to 3.x in between were never read, bpo-39421 among them)."""
    if series.since is not None:
        return _epoch(series.since)
    f = index.facts(base)
    oldest = (f.commit_time if f else 0) - series.lookback_days * 86400
    if series.upstream_end is not None:
        oldest = min(oldest, _epoch(series.upstream_end.date))
    return oldest


def _epoch(day: dt.date) -> int:
    """The start of `day` (UTC) as a commit time."""
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
