"""The final check: the stable branch against Debian's patches applied in order.

Equal trees, or a difference made only of the fixes still open (blocked by failing tests, which
is what the tests are for), each named; anything else is a failure (exit 1).
"""

import os
import subprocess
import sys
from pathlib import Path

from stablectl.forge import open_forge
from stablectl.policy import load_policy

policy = load_policy(Path(sys.argv[1]))
state = Path(os.environ["STABLECTL_STATE"])
cache = state / "cache" / "Python.git"
fork = Path(policy.fork.git)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


queue = git(cache, "rev-parse", "refs/remotes/upstream/stablectl-queue/3.11.2^{tree}")
stable = git(fork, "rev-parse", "3.11.2-stable^{tree}")
if stable == queue:
    print(f"stable tree == patches applied in order: {stable}")
    sys.exit(0)
forge = open_forge(policy, state)
blocked = [p for p in forge.list_prs() if p.marker is not None and p.marker.kind == "backport"]
paths: set[str] = set()
for p in blocked:
    checks = ", ".join(f"{c.name} {c.conclusion}" for c in forge.checks(p.head_sha)) or "no CI"
    print(f"still open: #{p.number} {p.title} ({checks})")
    git(cache, "fetch", "-q", str(fork), p.head_sha)
    paths |= set(git(cache, "diff", "--name-only", f"{p.head_sha}~1", p.head_sha).split())
diff = set(git(cache, "diff", "--name-only", stable, queue).split())
print(f"stable tree {stable[:12]} vs queue {queue[:12]}: {len(diff)} files differ")
if blocked and diff <= paths:
    print(f"the difference is exactly the files of the {len(blocked)} blocked fix(es)")
    sys.exit(0)
print("TREES DIFFER beyond the blocked fixes: " + ", ".join(sorted(diff - paths)))
sys.exit(1)
