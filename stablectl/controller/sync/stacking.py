"""Stacking: a pending fix that touches files earlier pending fixes touch is picked on top of
them, and its PR merges after theirs.

Fixes need not commute (a later one may change lines an earlier one adds): found on Debian's
python3.11 queue, where CVE-2026-4519's three webbrowser fixes only apply in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from stablectl.controller.plan import PlannedFix
from stablectl.gitops.pick import Picker
from stablectl.gitops.scan import CommitIndex


@dataclass(frozen=True)
class Link:
    """A clean pick earlier in the series' chain: the fix and the commit it became."""

    fix: PlannedFix
    commit: str


@dataclass(frozen=True)
class Stacked:
    head: str
    depends: tuple[str, ...]  # keys of the fixes it sits on, oldest first


def _paths(index: CommitIndex, sha: str | None) -> set[str]:
    facts = index.facts(sha) if sha else None
    return set(facts.paths) if facts is not None else set()


def _source(pf: PlannedFix) -> str | None:
    return pf.chosen.source.sha if pf.chosen else None


def overlaps(index: CommitIndex, source: str, chain: list[Link]) -> bool:
    """Does `source` touch a file an earlier fix of the chain touches?"""
    mine = _paths(index, source)
    return any(mine & _paths(index, _source(link.fix)) for link in chain)


def stack(
    index: CommitIndex, picker: Picker, *, source: str, tip: str, chain: list[Link]
) -> Stacked | None:
    """Pick `source` onto the earlier fixes it overlaps (and those they overlap), picked in
    order onto `tip`; None if it overlaps none or one of the picks does not apply."""
    paths = _paths(index, source)
    deps: list[PlannedFix] = []
    for link in reversed(chain):
        theirs = _paths(index, _source(link.fix))
        if paths & theirs:
            deps.insert(0, link.fix)
            paths |= theirs
    if not deps:
        return None
    onto = tip
    for dep in deps:
        assert dep.chosen is not None
        r = picker.pick(dep.chosen.source.sha, onto)
        if not (r.ok and r.commit):
            return None
        onto = r.commit
    r = picker.pick(source, onto)
    if not (r.ok and r.commit):
        return None
    return Stacked(r.commit, tuple(d.candidate.fix.key for d in deps))
