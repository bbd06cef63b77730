"""Benchmark: `stablectl sync` on the CPython-scale synthetic history.

    python bench/sync_bench.py            # local forge; add --github for API call counts

Measures, on series 3.11.4 of the synthetic history (100,000 commits on main):
- a first sync that opens 50 backport PRs (time per PR), against the baseline a worktree-based
  bot pays per PR in the same run (`git cherry-pick -x` in a checked-out tree, then
  `git push` of the branch: what cherry_picker does);
- a no-op sync right after it, as a process (target <= 2 s);
- with --github, the same two syncs against the GitHub-compatible test server (tests/ghserver,
  needs `npm ci --prefix .ci`): API requests of each (target for the no-op: 2 + 1 per series).
No assertion on time: this is run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth import Params, generate

from stablectl.controller.workspace import Workspace
from stablectl.policy import load_policy_text

SERIES, BRANCH = "3.11.4", "3.11"
N_PRS = 50


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@e", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def policy(upstream: Path, fork: Path, commits: list[str] | None, forge: str) -> str:
    flags = (
        '  - {name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}'
        if commits is None
        else "  - name: chosen\n    security: true\n    commits:\n"
        + "\n".join(f"      - {c}" for c in commits)
    )
    return f"""\
project: synth
upstream: {{git: {upstream}, main: main}}
fork: {{git: {fork}, forge: bench/cpython-stable}}
forge: {forge}
series:
  - {{name: "{SERIES}", base: v{SERIES}, sources: ["{BRANCH}", main]}}
flags:
{flags}
maintainers: [maint]
"""


def run_sync(
    policy_path: Path, state: Path, env: dict[str, str], ok_codes: tuple[int, ...] = (0,)
) -> tuple[float, dict]:
    """`stablectl sync --json` as a process: seconds and the report (`ok_codes`: the exit
    codes that still carry a report; 1 is a run that reported problems)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "stablectl", "sync", "--policy", str(policy_path), "--json"],
        capture_output=True,
        text=True,
        env=dict(env, STABLECTL_STATE=str(state)),
    )
    elapsed = time.perf_counter() - t
    if proc.returncode not in ok_codes:
        raise SystemExit(f"sync failed: {proc.stderr[-2000:]}")
    return elapsed, json.loads(proc.stdout)


def baseline_per_pr(upstream: Path, fork: Path, picks: list[str], work: Path) -> float:
    """cherry_picker's way: one worktree, per PR a branch, `cherry-pick -x`, `git push`."""
    tree = work / "wt"
    git("clone", "-q", "--shared", "--no-checkout", str(upstream), str(tree))
    t = time.perf_counter()
    git("checkout", "-q", f"v{SERIES}", cwd=tree)
    checkout = time.perf_counter() - t
    t = time.perf_counter()
    done = 0
    for sha in picks:
        git("checkout", "-q", "-B", f"bp-{sha[:10]}", f"v{SERIES}", cwd=tree)
        r = subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@e", "cherry-pick", "-x", sha],
            cwd=tree,
            capture_output=True,
            check=False,
        )
        if r.returncode != 0:
            subprocess.run(["git", "cherry-pick", "--abort"], cwd=tree, capture_output=True)
            continue
        git("push", "-q", str(fork), f"HEAD:refs/heads/baseline/{sha[:10]}", cwd=tree)
        done += 1
    per = (time.perf_counter() - t) / max(1, done)
    print(
        f"  baseline: worktree checkout {checkout:.2f}s once, then {per * 1000:.0f} ms per PR "
        f"({done} cherry-picks + pushes)"
    )
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=str(Path(__file__).parent / ".cache"))
    ap.add_argument("--github", action="store_true", help="also against the test server")
    args = ap.parse_args()
    template = generate(Path(args.cache), Params())
    work = Path(tempfile.mkdtemp(prefix="stablectl-syncbench-"))
    env = dict(os.environ, NO_COLOR="1")
    try:
        upstream = work / "upstream.git"
        git("clone", "-q", "--bare", "--shared", str(template), str(upstream))
        fork = work / "fork.git"
        git("init", "-q", "--bare", str(fork))
        git(
            "--git-dir",
            str(upstream),
            "push",
            "-q",
            str(fork),
            f"v{SERIES}^{{commit}}:refs/heads/{SERIES}-stable",
        )
        # Choose 50 fixes that pick cleanly, from a plan of the whole security rule.
        state = work / "state"
        p0 = load_policy_text(policy(upstream, fork, None, "{kind: local}"))
        eng = Workspace(p0, state)
        t = time.perf_counter()
        eng.fetch()
        plan = eng.plan()
        eng.close()
        t_plan = time.perf_counter() - t
        fixes = [pf for pf in plan.series[0].fixes if pf.status == "new-clean"]
        chosen = [pf.candidate.fix.key for pf in fixes[:N_PRS]]
        sources = [pf.chosen.source.sha for pf in fixes[:N_PRS] if pf.chosen]
        print(
            f"synthetic {template.name}: series {SERIES}, {len(fixes)} clean fixes pending; "
            f"cold plan {t_plan:.1f}s; syncing {len(chosen)} of them"
        )
        pol = work / "policy.yaml"
        pol.write_text(policy(upstream, fork, chosen, "{kind: local}"))
        t_first, first = run_sync(pol, state, env)
        opened = sum(1 for a in first["actions"] if a["action"] == "open")
        t_noop, noop = run_sync(pol, state, env)
        base = baseline_per_pr(upstream, fork, sources[:10], work)
        # What the first sync spent on top of planning: a no-op sync does the same planning.
        per = (t_first - t_noop) / max(1, opened)
        print("\nlocal forge                                   stablectl   baseline   ratio")
        print(f"first sync opening {opened} PRs (whole run)       {t_first:8.2f}s")
        print(
            f"  per PR (push + open, beyond planning)      {per * 1000:8.0f}ms "
            f"{base * 1000:8.0f}ms  {base / per:5.1f}x faster"
        )
        print(
            f"no-op sync right after (process)             {t_noop:8.2f}s   target 2s "
            f"({len(noop['actions'])} actions, {noop['api']['writes']} writes)"
        )
        if args.github:
            bench_github(upstream, chosen, work, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_github(upstream: Path, chosen: list[str], work: Path, env: dict[str, str]) -> None:
    from tests.ghserver.openapi import load_spec
    from tests.ghserver.server import FakeGitHub

    fork = work / "gh-fork.git"
    git("init", "-q", "--bare", str(fork))
    git(
        "--git-dir",
        str(upstream),
        "push",
        "-q",
        str(fork),
        f"v{SERIES}^{{commit}}:refs/heads/{SERIES}-stable",
    )
    fake = FakeGitHub(load_spec())
    fake.start()
    try:
        fake.add_token("bench-token", "stablectl-bot")
        fake.add_repo("bench/cpython-stable", fork, writers={"stablectl-bot"})
        pol = work / "gh-policy.yaml"
        forge = f'{{kind: github, api_url: "{fake.base}", token_env: BENCH_TOKEN}}'
        pol.write_text(policy(upstream, fork, chosen, forge))
        genv = dict(env, BENCH_TOKEN="bench-token")
        state = work / "gh-state"
        t1, first = run_sync(pol, state, genv)
        t2, noop = run_sync(pol, state, genv)
        a1, a2 = first["api"], noop["api"]
        print("\nGitHub test server                      requests  not-modified  writes  time")
        print(
            f"first sync ({sum(1 for a in first['actions'] if a['action'] == 'open')} PRs)"
            f"                    {a1['api_requests']:5d}  {a1['not_modified']:8d}  "
            f"{a1['writes']:6d}  {t1:5.1f}s"
        )
        print(
            f"no-op sync                               {a2['api_requests']:5d}  "
            f"{a2['not_modified']:8d}  {a2['writes']:6d}  {t2:5.1f}s   target <= 2 + 1 "
            "per series = 3"
        )
        print(f"  by operation: {a2['api_requests_by_operation']}")
        print(f"  schema errors from the server: {len(fake.schema_errors)}")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
