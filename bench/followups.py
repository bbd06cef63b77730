"""Follow-ups an old line's flagged fixes bring along, and what they cost (issue 16).

    python bench/followups.py /path/to/cpython.git [--line 3.10.2:3.10 --line 3.11.0:3.11]

For each line, a series anchored at the tag with `policies/cpython.yaml`'s commit-side flag
rules and sources [3.x, main] (as bench/applicability.py), planned over the repository's whole
history (MIPS/cpython: to March 2023) twice in the same process: without follow-ups
(`follow_ups.by: []`, the baseline) and with the default (commit, PR, issue). Prints how many
fixes follow-ups add, by what they name, their statuses, and each one with the fix it follows,
for a reader to judge precision; and the plan time as a ratio of the baseline's. Nothing here
is a test: the repository is public and large, fetched by hand, never committed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from applicability import line_policy, line_refs, run_lines
from real_history import prepare_cache

from stablectl.controller.plan import Plan
from stablectl.controller.workspace import Workspace


def run(repo_path: Path, name: str, branch: str, work: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    refs, base_sha = line_refs(repo, name, branch)
    plans: dict[bool, Plan] = {}
    warm: dict[bool, float] = {}
    cold: dict[bool, float] = {}
    for on in (False, True):
        state = work / f"state-{name}-{on}"
        base = line_policy(name, branch, work, skip=True)
        by = base.follow_ups.by if on else []
        policy = base.model_copy(
            update={"follow_ups": base.follow_ups.model_copy(update={"by": by})}
        )
        engine = Workspace(policy, state)
        prepare_cache(engine, repo_path, refs, {f"refs/heads/{name}-stable": base_sha})
        t = time.perf_counter()
        engine.plan()
        cold[on] = time.perf_counter() - t
        t = time.perf_counter()
        plans[on] = engine.plan()
        warm[on] = time.perf_counter() - t
        engine.close()
    fixes = plans[True].series[0].fixes
    keys = {pf.candidate.fix.key: pf for pf in fixes}
    follow = [pf for pf in fixes if pf.candidate.fix.follows]
    security = sum(1 for pf in follow if pf.candidate.fix.security)
    named = Counter(
        next(h.reason for h in pf.candidate.fix.flags if h.of).rsplit("names ", 1)[1].split("-")[0]
        for pf in follow
    )
    print(f"{name}-stable (sources {branch}, main; upstream to {branch} and main's tips):")
    print(
        f"  flagged without follow-ups {len(plans[False].series[0].fixes)}, with "
        f"{len(fixes)}: {len(follow)} follow-ups ({security} security), naming "
        f"{dict(sorted(named.items()))}"
    )
    print(f"  follow-up states: {dict(sorted(Counter(str(pf.status) for pf in follow).items()))}")
    print(
        f"  plan cold {cold[False]:.1f}s without, {cold[True]:.1f}s with: "
        f"{cold[True] / max(cold[False], 1e-9):.2f}x; warm {warm[False]:.2f}s without, "
        f"{warm[True]:.2f}s with: {warm[True] / max(warm[False], 1e-9):.2f}x"
    )
    for pf in follow:
        fx = pf.candidate.fix
        parent = keys.get(fx.follows or "")
        hit = next(h for h in fx.flags if h.of)
        print(f"    {pf.status!s:30s} {fx.subject[:70]}")
        print(
            f"      follows {(fx.follows or '')[:10]} "
            f"{parent.candidate.fix.subject[:60] if parent else ''} "
            f"({hit.reason.rsplit(': ', 1)[-1]})"
        )


if __name__ == "__main__":
    run_lines(run, __doc__, "stablectl-followups-")
