"""Approve every open, non-draft PR as `maint` on its current head; print how many are still
in flight (open, and not blocked by a failed test run on their current head)."""

import os
import sys
from pathlib import Path

from stablectl.forge import open_forge
from stablectl.forge.local import LocalForge
from stablectl.policy import load_policy

policy = load_policy(Path(sys.argv[1]))
forge = open_forge(policy, Path(os.environ["STABLECTL_STATE"]))
assert isinstance(forge, LocalForge)
prs = forge.list_prs()
for pr in prs:
    if not pr.draft and not any(r.commit == pr.head_sha for r in forge.reviews(pr.number)):
        forge.review(pr.number, "maint", "APPROVED")
print(sum(1 for pr in prs if not any(c.failed for c in forge.checks(pr.head_sha))))
