"""Benchmark: a scheduled `stablectl sync` at CPython scale, cold and warm (issue 18).

    python bench/scheduled_run.py /path/to/MIPS-cpython.git      # fetch github:MIPS/cpython

In Actions the controller's state (STABLECTL_STATE) now survives between scheduled runs
(actions/cache). This measures what that buys, on CPython's real history (MIPS/cpython: main,
3.11 and every tag to March 2023) with a fork holding `3.11.2-stable` at v3.11.2, against the
GitHub-compatible test server (tests/ghserver; needs `npm ci --prefix .ci`):

- cold: a state directory with the git objects but nothing derived (no commit index, ETags,
  issue cache or recorded tips), which is a run whose cache was missing, apart from the object
  download itself. The public snapshot is a partial clone that git will not pack from, so the
  objects are laid out through alternates, as bench/real_history.py does; a real cold run adds
  the clone (about 500 MB for CPython);
- warm, nothing new: the same state directory again (what a restored cache gives);
- warm, one new upstream fix: a Security NEWS entry committed on upstream's 3.11 branch.

Each run is `stablectl sync --json` as a process, timed, with the forge requests it made.
Baseline: `git ls-remote` of upstream and the fork in the same process, the least any
scheduled bot must do to learn that nothing changed. Targets (issue 18): a warm no-op run of at
most 30 s of stablectl time and at most 3 forge requests. No assertion: run by hand.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pygit2
from real_history import shared_clone
from sync_bench import run_sync

from stablectl.controller.workspace import Workspace
from stablectl.gitops.trees import update_tree
from stablectl.policy import load_policy_text
from stablectl.state import check_state

SERIES = "3.11.2"


def policy_text(upstream: Path, fork: Path, api: str) -> str:
    return f"""\
project: python
upstream: {{git: "{upstream}", main: main}}
fork: {{git: "{fork}", forge: bench/cpython-stable}}
forge: {{kind: github, api_url: "{api}", token_env: BENCH_TOKEN}}
identity: {{name: stablectl-bot, email: bot@example.invalid}}
series:
  - {{name: "{SERIES}", base: v{SERIES}, sources: ["3.11", main]}}
flags:
  - {{name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}}
  - name: cve
    security: true
    message: '\\bCVE-\\d{{4}}-\\d{{4,}}\\b'
maintainers: [maint]
release: {{trigger: manual}}
"""


def ls_remote_baseline(*urls: Path) -> float:
    t = time.perf_counter()
    for url in urls:
        subprocess.run(["git", "ls-remote", str(url)], capture_output=True, check=True)
    return time.perf_counter() - t


def new_security_fix(upstream: Path) -> str:
    """A commit on upstream's 3.11 adding a Security NEWS entry."""
    repo = pygit2.Repository(str(upstream))
    parent = repo.references["refs/heads/3.11"].peel(pygit2.Commit)
    news = repo.create_blob(b"Harden the bench's parser against long input.\n")
    path = "Misc/NEWS.d/next/Security/2023-03-30-00-00-00.gh-issue-199999.bench.rst"
    # Only the trees on the path are rewritten: the snapshot lacks some unrelated blobs.
    tree = update_tree(repo, parent.tree, {path: (news, int(pygit2.enums.FileMode.BLOB))})
    sig = pygit2.Signature("Bench", "bench@example.invalid", int(time.time()), 0)
    sha = repo.create_commit(
        "refs/heads/3.11",
        sig,
        sig,
        "[3.11] gh-199999: Harden the parser (GH-199998) (#199997)",
        tree,
        [parent.id],
    )
    return str(sha)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cpython", type=Path, help="CPython history (github:MIPS/cpython)")
    args = ap.parse_args()
    src = args.cpython.resolve()
    from tests.ghserver.openapi import load_spec
    from tests.ghserver.server import FakeGitHub

    srcrepo = pygit2.Repository(str(src))
    refs = {
        f"refs/heads/{b}": str(srcrepo.revparse_single(b).peel(pygit2.Commit).id)
        for b in ("main", "3.11")
    }
    refs[f"refs/tags/v{SERIES}"] = str(srcrepo.references[f"refs/tags/v{SERIES}"].target)
    base = str(srcrepo.revparse_single(f"v{SERIES}").peel(pygit2.Commit).id)
    with tempfile.TemporaryDirectory(prefix="stablectl-scheduled-") as tmp:
        work = Path(tmp)
        upstream, fork = work / "upstream.git", work / "fork.git"
        shared_clone(src, upstream, refs)
        shared_clone(src, fork, {f"refs/heads/{SERIES}-stable": base})
        fake = FakeGitHub(load_spec())
        fake.start()
        try:
            fake.add_token("bench-token", "stablectl-bot")
            fake.add_repo("bench/cpython-stable", fork, writers={"stablectl-bot"})
            pol = work / "policy.yaml"
            pol.write_text(policy_text(upstream, fork, fake.base))
            env = dict(os.environ, BENCH_TOKEN="bench-token", NO_COLOR="1")
            state = work / "state"
            # The objects, laid out as a restored cache would hold them, nothing derived.
            policy = load_policy_text(pol.read_text())
            check_state(policy, state)
            engine = Workspace(policy, state)
            cache_refs = {
                (f"refs/remotes/upstream/{k[11:]}" if k.startswith("refs/heads/") else k): v
                for k, v in refs.items()
            }
            shared_clone(src, engine.cache.path, cache_refs)
            engine.close()
            rows = []
            t, cold = run_sync(pol, state, env, (0, 1))
            rows.append(("cold (no index, ETags, tips)", t, cold))
            t, warm = run_sync(pol, state, env, (0, 1))
            rows.append(("warm, nothing new", t, warm))
            fix = new_security_fix(upstream)
            t, one = run_sync(pol, state, env, (0, 1))
            rows.append((f"warm, one new fix ({fix[:10]})", t, one))
            base_t = ls_remote_baseline(upstream, fork)
            print(f"CPython history: {src} (main, 3.11, v{SERIES}); fork {SERIES}-stable")
            print(
                f"{'run':38} {'seconds':>8} {'x ls-remote':>11} {'requests':>9} "
                f"{'304s':>5} {'writes':>6} {'PRs opened':>10}"
            )
            for name, secs, rep in rows:
                api = rep["api"]
                opened = sum(1 for a in rep["actions"] if a["action"] == "open")
                print(
                    f"{name:38} {secs:8.1f} {secs / base_t:11.0f} {api['api_requests']:9d} "
                    f"{api['not_modified']:5d} {api['writes']:6d} {opened:10d}"
                )
            print(f"baseline: git ls-remote of upstream and fork {base_t:.2f} s")
            print(f"warm no-op requests by operation: {warm['api']['api_requests_by_operation']}")
            print("targets: warm no-op <= 30 s and <= 3 requests")
            print(f"schema errors from the server: {len(fake.schema_errors)}")
        finally:
            fake.stop()


if __name__ == "__main__":
    main()
