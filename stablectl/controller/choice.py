"""A fix's choice of source: its sources picked in preference order onto the tip, the first
that applies (and changes code on the line) chosen; and the verdict a pick alone can give, a
fix whose change on the line is documentation only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stablectl.controller.applicability import DOCUMENTATION_ONLY, documentation_only
from stablectl.controller.pick_ahead import FactsOf
from stablectl.controller.plan import Attempt, PlannedFix
from stablectl.controller.prerequisites import BlameAhead
from stablectl.controller.selection import Candidate, Source
from stablectl.gitops.pick import Picker
from stablectl.policy import Applicability, Series


def pick_best(
    picker: Picker,
    sources: list[Source],
    onto: str,
    index: FactsOf | None = None,
    *,
    is_code: Callable[[str], bool] | None = None,
) -> tuple[list[Attempt], Attempt | None, str]:
    """Try the sources in preference order; the first clean (or empty) pick wins. With
    `is_code`, a clean pick that changes only NEWS and documentation on the line does not
    win (a NEWS-only backport upstream wrote for a branch its code never reached): the next
    source is tried, and with none left no source is chosen."""
    attempts: list[Attempt] = []
    if not sources:
        return attempts, None, "no usable source commit (merge commits only, or missing)"
    for src in sources:
        facts = index.facts(src.sha) if index is not None else None
        paths = facts.paths if facts is not None and not facts.paths_truncated else None
        # The first conflict is the one reported (and judged); a later source only matters
        # if it applies.
        reported = any(a.result.outcome == "conflict" for a in attempts)
        res = picker.pick(src.sha, onto, paths=paths, outcome_only=reported)
        docs: list[str] | None = None
        if is_code is not None and res.outcome == "clean" and res.tree is not None:
            docs = documentation_only(picker.repo, onto, res.tree, is_code)
        attempt = Attempt(src, res, tuple(docs or ()))
        attempts.append(attempt)
        if res.ok and not docs:
            note = ""
            if len(attempts) > 1:
                first = attempts[0]
                how = (
                    "changes only documentation"
                    if first.documentation_only
                    else (f"{first.result.outcome}s")
                )
                note = f"{first.source.describe()} {how}; used {src.describe()}"
            elif res.lever not in (None, "paths"):
                note = f"merged with {res.lever}"
            return attempts, attempt, note
    return attempts, None, f"no source applies with code ({len(attempts)} tried)"


@dataclass(frozen=True)
class Chooser:
    """What a pick thread or worker process does with a coming fix (controller/pick_ahead.py):
    its choice of sources onto a tip (`pick_best`), then the blames a prerequisite search
    would start with when none applies. Plain data, so a worker process can be sent it. It
    answers the tip after the fix: its clean pick's commit, or None (the tip stays)."""

    applicability: Applicability | None  # judged (`is_code`) when the policy skips
    blame: BlameAhead | None

    def __call__(self, p: Picker, sources: list[Source], onto: str, facts: FactsOf) -> str | None:
        is_code = self.applicability.is_code if self.applicability is not None else None
        attempts, chosen, _note = pick_best(p, sources, onto, facts, is_code=is_code)
        if chosen is None and self.blame is not None:
            self.blame(p, [(a.source.sha, a.result) for a in attempts])
        clean = chosen is not None and chosen.result.outcome == "clean"
        return chosen.result.commit if clean and chosen is not None else None


def documentation_only_verdict(
    series: Series, cand: Candidate, attempts: list[Attempt], docs: Attempt
) -> PlannedFix:
    """A fix whose pick changes only documentation on the line: not applicable, no CVE
    claimed."""
    return PlannedFix(
        cand,
        attempts=attempts,
        not_applicable=(
            f"picked onto {series.stable_branch}, it changes only "
            f"{', '.join(docs.documentation_only[:3])}: no code of the line is fixed"
        ),
        evidence=tuple(
            f"{a.source.describe()}: "
            + ("documentation only" if a.documentation_only else a.result.outcome)
            for a in attempts
        ),
        verdict=DOCUMENTATION_ONLY,
    )
