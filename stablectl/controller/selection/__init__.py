"""Selection: which fixes each series needs, from which source, in which order.

- model.py      fixes, flag hits, sources, candidates, FixState (one vocabulary everywhere)
- flags.py      flag rules: which rules flag a commit and why; forge-backed conditions
- summaries.py  cached, incremental summaries of commit ranges
- windows.py    the upstream branches a series reads, in source-preference order
- grouping.py   commits that are one change become one fix (trailers, PR numbers)
- states.py     applied, in the base, reverted, excluded, or pending
- sources.py    which commit of a fix to pick, best first
- selector.py   ties them together, per series
"""

from stablectl.controller.selection.flags import evaluate_flags, gh_issues
from stablectl.controller.selection.model import (
    Candidate,
    Fix,
    FixState,
    FlagHit,
    SeriesSelection,
    Source,
    VerdictKind,
)
from stablectl.controller.selection.selector import Selector

__all__ = [
    "Candidate",
    "Fix",
    "FixState",
    "FlagHit",
    "Selector",
    "SeriesSelection",
    "Source",
    "VerdictKind",
    "evaluate_flags",
    "gh_issues",
]
