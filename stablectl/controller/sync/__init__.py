"""The reconcile loop (`stablectl sync`), one idea per module; `run.py` is the way in:

- run.py           one run: view → desired → reconcile → apply → merge → release → report
- actions.py       typed actions (one payload per kind), findings, the report
- maintainer.py    `/stablectl` comment commands → requests and replies
- desired.py       desired PRs per series: keep, pick, stack or conflict
- stacking.py      fixes that touch the same files, picked on each other
- presentation.py  branch names, titles, labels, markers, PR bodies, comments
- reconcile.py     pure: desired PRs + the forge's view → actions
- merging.py       mergeable PRs, forward-only merge
- releases.py      release decisions in three stages (merge, tag+publish, propose)
- publishing.py    the tag and the release artifacts, carried out
- apply.py         carrying out actions: pushes and forge calls, write points
"""

from stablectl.controller.sync.actions import Action, SyncReport
from stablectl.controller.sync.presentation import branch_name
from stablectl.controller.sync.run import Syncer

__all__ = ["Action", "SyncReport", "Syncer", "branch_name"]
