"""Which fixes wait for which: the order fixes are planned in (a follow-up after the fixes it
follows, whatever order selection listed them in), a follow-up's standing from the fixes it
follows, and a conflicting fix whose changed lines another fix of the plan writes, which
does not apply yet (it waits for that fix instead of being a conflict of its own)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from stablectl.controller.selection import Candidate, FixState
from stablectl.policy import FOLLOW_UP_RULE

if TYPE_CHECKING:
    from stablectl.controller.plan import PlannedFix
    from stablectl.controller.prerequisites import Prerequisite
    from stablectl.gitops.scan import CommitFacts

# What a fix waits for: the fix it needs does not apply yet, or waits itself.
NOT_YET = (
    FixState.NEW_CONFLICT,
    FixState.NEW_TO_ADAPT,
    FixState.NEW_ADAPTED,
    FixState.NEW_ERROR,
    FixState.WAITING,
)


def parents_first(candidates: Sequence[Candidate]) -> list[Candidate]:
    """`candidates` in their order, except that a fix comes after every fix of the list it
    follows up: a follow-up selection lists before its parent (its backport committed earlier
    than the parent's) is planned once the parent's state is known, so it waits for a parent
    that conflicts instead of conflicting itself. Cycles keep their listed order."""
    keys = {c.fix.key for c in candidates}
    placed: set[str] = set()
    out: list[Candidate] = []
    held: list[Candidate] = []

    def ready(c: Candidate) -> bool:
        return all(k == c.fix.key or k not in keys or k in placed for k in c.fix.follows_all)

    for c in candidates:
        if not ready(c):
            held.append(c)
            continue
        out.append(c)
        placed.add(c.fix.key)
        progress = True
        while progress and held:
            progress = False
            for h in list(held):
                if ready(h):
                    held.remove(h)
                    out.append(h)
                    placed.add(h.fix.key)
                    progress = True
    return out + held


def follow_up_standing(cand: Candidate, by_key: Mapping[str, PlannedFix]) -> tuple[str, str, str]:
    """A follow-up and the fixes it follows: (why it is not planned, as every fix it
    follows is excluded or reverted; what it waits for, as one does not apply yet; what
    to tell whoever reviews it, as the fixes it follows do not concern the line). A
    follow-up of a not-applicable fix is judged on its own change, never through the
    fix's verdict: "Ensure libexpat is linked against libm" follows a bundled-expat
    update but changes setup.py. A fix flagged by rules of its own (not only as a
    follow-up) is judged on its own code too."""
    if any(h.rule != FOLLOW_UP_RULE for h in cand.fix.flags):
        return "", "", ""
    reasons = []
    waits = []
    unconcerned = []
    for key in cand.fix.follows_all:
        parent = by_key.get(key)
        if parent is None:
            return "", "", ""
        status = parent.status
        if status == FixState.NOT_APPLICABLE:
            unconcerned.append(f"{key[:10]} ({parent.not_applicable})")
        elif status in (FixState.EXCLUDED, FixState.REVERTED):
            reasons.append(
                f"a follow-up of {key[:10]}, and it is {status} ({parent.candidate.reason})"
            )
        elif status in NOT_YET:
            # Not on its own: it completes a fix the line does not have yet. Once that fix
            # is resolved by hand and merged, this one is planned as usual.
            waits.append(f"{key[:10]} ({status})")
        else:
            return "", "", ""  # one of the fixes it follows is on the line, or is coming
    if waits:
        return "", "waits for " + ", ".join(waits) + ", which does not apply yet", ""
    if unconcerned:
        info = (
            "it follows up a fix judged not applicable to the line: "
            + "; ".join(unconcerned)
            + ". Its own change was judged on its own: check the line needs it"
        )
        return "", "", info
    return "; ".join(reasons), "", ""


def waits_on_writer(
    own_key: str,
    blamed: Sequence[Prerequisite],
    member_of: Mapping[str, str],
    by_key: Mapping[str, PlannedFix],
) -> str:
    """A conflicting fix whose changed lines (not only their context) another fix of the
    plan writes, and that fix does not apply yet: what it waits for (`waits_for`), else ""."""
    waits: list[str] = []
    for p in blamed:
        if p.context_only:
            continue
        key = member_of.get(p.sha, own_key)
        writer = by_key.get(key) if key != own_key else None
        if writer is None or writer.status not in NOT_YET:
            continue
        note = f"{key[:10]} ({writer.status}: it writes the lines this fix changes, at " + (
            ", ".join(p.where[:3]) + ")"
        )
        if note not in waits:
            waits.append(note)
    if not waits:
        return ""
    return "waits for " + "; ".join(waits) + ", which does not apply yet"


def rides_on(
    source: str,
    by_key: Mapping[str, PlannedFix],
    facts_of: Callable[[str], CommitFacts | None],
) -> str:
    """A fix (picked from `source`) whose change the plan's chain already has, through
    earlier fixes of the plan that are not merged yet and change the same files: what it
    waits for ("" for none)."""
    own = facts_of(source)
    paths = set(own.paths if own is not None else ())
    waits = []
    for key, pf in by_key.items():
        if not pf.applies or pf.chosen is None:
            continue
        facts = facts_of(pf.chosen.source.sha)
        if facts is not None and paths & set(facts.paths):
            waits.append(f"{key[:10]} ({pf.status})")
    if not waits:
        return ""
    return "its change comes with " + ", ".join(waits) + ", not on the line yet: waits for it"
