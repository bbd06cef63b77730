"""What a conflict no verdict settles and no prerequisite resolves can still become, before it
is left to a person as a conflict, in order: an adaptation a distribution already published
(controller/downstream.py), or a pick whose code is clean once what is outside the code is
set aside (controller/parts.py). Each is a PR for review, never a clean backport."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stablectl.controller.downstream import Adaptation, adapt, candidates
from stablectl.controller.parts import Split, split_pick
from stablectl.controller.plan import Attempt, PlannedFix
from stablectl.controller.selection import Candidate, SeriesSelection
from stablectl.gitops.pick import Picker

if TYPE_CHECKING:
    from stablectl.controller.workspace import Workspace


class Resolutions:
    """The resolutions a workspace's plan offers a conflicting fix, picked with the plan's
    picker (the series' path map)."""

    def __init__(self, ws: Workspace, picker: Picker) -> None:
        self.ws = ws
        self.picker = picker

    def resolve(
        self,
        sel: SeriesSelection,
        cand: Candidate,
        attempts: list[Attempt],
        tip: str,
        *,
        info: str,
        report: str,
    ) -> PlannedFix | None:
        """The fix as a downstream adaptation or a pick to adapt; None: a conflict."""
        conflicting = next((a for a in attempts if a.result.outcome == "conflict"), None)
        if conflicting is None or not self.ws.policy.applicability.skip:
            return None
        adapted = self.downstream(sel, cand, conflicting, tip)
        if adapted is not None:
            return PlannedFix(
                cand,
                attempts=attempts,
                adapted_from=adapted,
                evidence=(adapted.describe(),),
                info=info,
                prerequisite_report=report,
            )
        split = self.split(sel, conflicting, tip)
        if split is not None:
            return PlannedFix(
                cand,
                attempts=attempts,
                split=split,
                evidence=split.describe(),
                info=info,
                prerequisite_report=report,
            )
        return None

    def downstream(
        self, sel: SeriesSelection, cand: Candidate, conflicting: Attempt, tip: str
    ) -> Adaptation | None:
        """The first downstream patch adapting the fix that applies alone onto `tip`."""
        patches = self.ws.downstream(sel.series)
        if not patches:
            return None
        picker = self.picker
        for patch, why in candidates(patches, cand.fix):
            got = adapt(picker.repo, picker, patch, why, conflicting.source.sha, tip)
            if got is not None:
                return got
        return None

    def split(self, sel: SeriesSelection, conflicting: Attempt, tip: str) -> Split | None:
        """The conflicting source picked again with what is outside its code set aside."""
        return split_pick(
            self.picker,
            conflicting.source.sha,
            tip,
            conflicting.result.conflicts,
            self.ws.policy.applicability,
            dict(sel.series.path_map),
        )
