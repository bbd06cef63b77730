"""Approve every open, non-draft PR as `maint` on its current head; print how many are open."""

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
print(len(prs))
