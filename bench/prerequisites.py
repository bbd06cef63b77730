"""Conflicts an old line rescues with prerequisites, and what they cost (issue 16).

    python bench/prerequisites.py /path/to/cpython.git [--line 3.10.2:3.10 --line 3.11.0:3.11]

For each line, a series anchored at the tag with `policies/cpython.yaml`'s commit-side flag
rules and sources [3.x, main] (as bench/applicability.py), planned over the repository's whole
history (MIPS/cpython: to March 2023) twice in the same process: without prerequisites
(`prerequisites.max_commits: 0`, the baseline) and with the default bound. Prints the
statuses, each rescued fix with its prerequisites and whether each prerequisite is on the
line's own maintenance branch (upstream backported it there itself) or only elsewhere, what
still conflicts and why, and the plan time as a ratio of the baseline's. Nothing here is a
test: the repository is public and large, fetched by hand, never committed.
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
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace


def run(repo_path: Path, name: str, branch: str, work: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    refs, base_sha = line_refs(repo, name, branch)
    branch_tip = repo.branches.local[branch].target
    plans: dict[int, Plan] = {}
    seconds: dict[int, float] = {}
    cold: dict[int, float] = {}
    for bound in (0, 3):
        state = work / f"state-{name}-{bound}"
        base = line_policy(name, branch, work, skip=True)
        policy = base.model_copy(
            update={"prerequisites": base.prerequisites.model_copy(update={"max_commits": bound})}
        )
        engine = Workspace(policy, state)
        prepare_cache(engine, repo_path, refs, {f"refs/heads/{name}-stable": base_sha})
        t = time.perf_counter()
        engine.plan()  # cold: the commit index, picks and blames computed
        cold[bound] = time.perf_counter() - t
        t = time.perf_counter()  # warm: what a scheduled run on a kept state directory pays
        plans[bound] = engine.plan()
        seconds[bound] = time.perf_counter() - t
        stats = plans[bound].stats
        engine.close()
    before = Counter(str(pf.status) for pf in plans[0].series[0].fixes)
    after = Counter(str(pf.status) for pf in plans[3].series[0].fixes)
    rescued = [pf for pf in plans[3].series[0].fixes if pf.status == FixState.NEW_CLEAN_PREREQ]
    sizes = Counter(len(pf.prerequisites) for pf in rescued)
    prereqs = [p for pf in rescued for p in pf.prerequisites]
    on_own = sum(
        1
        for p in prereqs
        if repo.descendant_of(branch_tip, pygit2.Oid(hex=p.sha)) or p.sha == str(branch_tip)
    )
    print(f"{name}-stable (sources {branch}, main; upstream to {branch} and main's tips):")
    print(f"  without prerequisites: {dict(sorted(before.items()))}")
    print(f"  with (max_commits 3):  {dict(sorted(after.items()))}")
    print(
        f"  rescued {len(rescued)} of {before.get('new-conflict', 0)} conflicts; prerequisites "
        f"per fix {dict(sorted(sizes.items()))}; {len(prereqs)} prerequisites, {on_own} on "
        f"upstream's {branch} (backported there by upstream), {len(prereqs) - on_own} elsewhere"
    )
    print(
        f"  plan cold {cold[0]:.1f}s without, {cold[3]:.1f}s with: "
        f"{cold[3] / max(cold[0], 1e-9):.2f}x; warm {seconds[0]:.2f}s without, "
        f"{seconds[3]:.2f}s with: {seconds[3] / max(seconds[0], 1e-9):.2f}x; "
        f"searches {stats.get('prerequisite_searches')}, sets tried "
        f"{stats.get('prerequisite_sets')}"
    )
    for pf in rescued:
        print(f"    rescued   {pf.candidate.fix.subject[:70]}")
        for p in pf.prerequisites:
            ctx = " (context only)" if p.context_only else ""
            print(f"       needs  {p.sha[:10]} {p.subject[:60]}  at {', '.join(p.where)[:60]}{ctx}")
    for pf in plans[3].series[0].fixes:
        if pf.status == FixState.NEW_CONFLICT:
            print(f"    conflict  {pf.candidate.fix.subject[:70]}")
            print(f"              {pf.prerequisite_report[:230]}")


if __name__ == "__main__":
    run_lines(run, __doc__, "stablectl-prerequisites-")
