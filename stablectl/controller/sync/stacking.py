"""Stacking: a pending fix that touches files earlier pending fixes touch is picked on top of
them, and its PR merges after theirs.

Fixes need not commute (a later one may change lines an earlier one adds): found on Debian's
python3.11 queue, where CVE-2026-4519's three webbrowser fixes only apply in order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from stablectl.controller.plan import PlannedFix
from stablectl.gitops.pick import Picker
from stablectl.gitops.pick_result import PickResult
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


def _paths(index: CommitIndex, shas: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for sha in shas:
        facts = index.facts(sha)
        if facts is not None:
            out.update(facts.paths)
    return out


def overlaps(index: CommitIndex, pf: PlannedFix, chain: list[Link]) -> bool:
    """Does the fix (or a prerequisite of it) touch a file an earlier fix of the chain
    touches?"""
    mine = _paths(index, pf.picks)
    return any(mine & _paths(index, link.fix.picks) for link in chain)


def pick_fix(picker: Picker, pf: PlannedFix, onto: str) -> PickResult:
    """The fix's picks onto `onto`: its prerequisites (each with the trailer naming the fix),
    then its source. The first pick that is not clean is the result; else the source's."""
    key = pf.candidate.fix.key
    *prereqs, source = pf.picks
    for sha in prereqs:
        r = picker.pick(sha, onto, prerequisite_for=key)
        if not (r.outcome == "clean" and r.commit):
            return r
        onto = r.commit
    return picker.pick(source, onto)


def stack(
    index: CommitIndex,
    picker: Picker,
    *,
    fix: PlannedFix,
    tip: str,
    chain: list[Link],
    needs: Collection[str] = (),
) -> Stacked | None:
    """Pick the fix onto the earlier fixes it overlaps (and those they overlap), and onto
    those it `needs` (keys: its tests need what they add), picked in order onto `tip`; None
    if it sits on none or one of the picks does not apply."""
    paths = _paths(index, fix.picks)
    deps: list[PlannedFix] = []
    for link in reversed(chain):
        theirs = _paths(index, link.fix.picks)
        if paths & theirs or link.fix.candidate.fix.key in needs:
            deps.insert(0, link.fix)
            paths |= theirs
    if not deps:
        return None
    onto = tip
    for dep in deps:
        r = pick_fix(picker, dep, onto)
        if not (r.ok and r.commit):
            return None
        onto = r.commit
    r = pick_fix(picker, fix, onto)
    if not (r.ok and r.commit):
        return None
    return Stacked(r.commit, tuple(d.candidate.fix.key for d in deps))
