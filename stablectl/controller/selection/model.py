"""What selection produces: fixes, the flags that chose them, their sources and states.

A **fix** is one change upstream seen as one thing: the original commit and all its backports
on several branches, linked by `(cherry picked from commit X)` trailers and by the upstream PR
number (``(GH-N)`` / ``(#N)``). Patch-ids link what carries no trailer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, assert_never

from stablectl.policy import Series


class FixState(enum.StrEnum):
    """One vocabulary for a fix's state, from selection to the report.

    Selection decides the first five (is the fix still wanted on the line?); the plan turns a
    pending fix into one of the `new-*` outcomes of picking it onto the stable tip.
    """

    PENDING = "pending"
    APPLIED = "applied"
    IN_BASE = "in-base"
    REVERTED = "reverted"
    EXCLUDED = "excluded"
    NEW_CLEAN = "new-clean"
    NEW_CLEAN_PREREQ = "new-clean-with-prerequisites"  # clean on upstream commits it needs
    NEW_EMPTY = "new-empty"
    NEW_CONFLICT = "new-conflict"
    # The code picks clean once documentation the line lacks is left out and NEWS added
    # whole; what remains (its tests that conflict, or the leaving out) is a person's to
    # adapt and review (controller/parts.py). Never shown as clean.
    NEW_TO_ADAPT = "new-to-adapt"
    # A conflict a downstream adaptation (a distribution's patch, controller/downstream.py)
    # resolves when applied alone: a PR of that adaptation, reviewed as one.
    NEW_ADAPTED = "new-adapted"
    NEW_ERROR = "new-error"
    NOT_APPLICABLE = "not-applicable"  # does not concern the line's code (why: evidence)
    WAITING = "waiting"  # a follow-up of a fix that does not apply yet: planned after it

    @property
    def done(self) -> bool:
        """On the line already, one way or another (its PR, if any, can close)."""
        return self in (FixState.APPLIED, FixState.IN_BASE, FixState.NEW_EMPTY)


class VerdictKind(enum.StrEnum):
    """Which rule of the line's code settled a fix without a PR (controller/applicability.py,
    planner.py): the VEX justification of a `known_not_affected` statement is chosen by it
    (`vex_justification`), so a kind added without one is a type error, not a default."""

    NOT_BUILT = "not-built"  # its code is outside the line's build profile
    DOCUMENTATION_ONLY = "documentation-only"  # on the line it changes only docs and NEWS
    ABSENT_CODE = "absent-code"  # the code it changes is not on the line (proven twice)
    ALREADY_THERE = "already-there"  # its change is on the line already (applied)
    FOLLOW_UP = "follow-up"  # a follow-up of a fix the line does not take

    @property
    def vex_justification(self) -> str:
        """CSAF 2.0's flag label for a not-affected statement of this kind."""
        match self:
            case VerdictKind.NOT_BUILT:
                return "component_not_present"
            case (
                VerdictKind.DOCUMENTATION_ONLY
                | VerdictKind.ABSENT_CODE
                | VerdictKind.ALREADY_THERE
                | VerdictKind.FOLLOW_UP
            ):
                return "vulnerable_code_not_present"
            case _:
                assert_never(self)


SourceKind = Literal["own-backport", "sibling-backport", "original", "other"]


@dataclass(frozen=True)
class FlagHit:
    rule: str
    sha: str
    reason: str
    security: bool
    of: str | None = None  # a follow-up's hit: the key of the fix it follows up


@dataclass(frozen=True)
class Source:
    """A commit a fix could be picked from, and why it ranks where it does."""

    sha: str
    kind: SourceKind
    branch: str | None

    def describe(self) -> str:
        where = f" on {self.branch}" if self.branch else ""
        return f"{self.kind}{where} {self.sha[:10]}"


@dataclass(frozen=True)
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

    @property
    def follows(self) -> str | None:
        """The fix this one follows up (the first, when it names several)."""
        return next((h.of for h in self.flags if h.of is not None), None)

    @property
    def follows_all(self) -> tuple[str, ...]:
        """Every fix this one follows up."""
        return tuple(dict.fromkeys(h.of for h in self.flags if h.of is not None))


@dataclass(frozen=True)
class Candidate:
    """One flagged fix as seen by one series."""

    fix: Fix
    state: FixState
    reason: str
    sources: list[Source] = field(default_factory=list)
    order: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class SeriesSelection:
    series: Series
    base_sha: str
    tip_sha: str
    branch_exists: bool
    candidates: list[Candidate]
    errors: list[str] = field(default_factory=list)
    # The originals the series' own maintenance branch took backports of (trailers), newest
    # last: what upstream judged to concern that branch (see controller/applicability.py).
    own_backports: tuple[str, ...] = ()
    own_issues: frozenset[str] = frozenset()  # issues (gh-N, bpo-N) its commits name
    searched: tuple[str, ...] = ()  # the upstream branches fixes are taken from, in order
