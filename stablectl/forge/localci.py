"""The local forge's CI: run the policy's test command on a PR head and record a check.

Each run checks the head out into a temporary directory (a `git clone --shared`, so the fork
is only read), runs `checks.test_command` there through the shell with a time limit, keeps the
log under the state directory and records check `local-ci` (in progress, then its outcome) on
the head commit, where the approval gate reads it like any GitHub check.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stablectl.forge.base import PullRequest
from stablectl.forge.local import CHECK_NAME, LocalForge
from stablectl.gitops.git import git

__all__ = ["CHECK_NAME", "CIResult", "needs_run", "report", "run_ci"]


@dataclass(frozen=True)
class CIResult:
    pr: int
    sha: str
    conclusion: str  # success | failure | timed_out | skipped
    seconds: float
    log: Path
    returncode: int | None


def run_ci(
    forge: LocalForge,
    command: str,
    log_dir: Path,
    pr: PullRequest,
    *,
    timeout: float = 3600,
) -> CIResult:
    sha = pr.head_sha
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"pr{pr.number}-{sha[:12]}.log"
    url = log.as_uri()
    # The local CI reports as its own identity (the forge's `ci_identity`), whoever runs it:
    # only that identity's results count for the required checks.
    ci = forge.ci_identity
    forge.record_check(CHECK_NAME, sha, "in_progress", None, url, creator=ci)
    t0 = time.perf_counter()
    rc: int | None = None
    with tempfile.TemporaryDirectory(prefix=f"stablectl-ci-{pr.number}-") as tmp:
        work = Path(tmp) / "src"
        _checkout(forge.fork_git, sha, work)
        env = dict(
            os.environ, STABLECTL_PR=str(pr.number), STABLECTL_SHA=sha, STABLECTL_BASE=pr.base
        )
        with log.open("wb") as out:
            out.write(f"$ {command}\n# PR #{pr.number} at {sha}\n".encode())
            out.flush()
            try:
                proc = subprocess.run(
                    command,
                    shell=True,
                    cwd=work,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
                rc = proc.returncode
                conclusion = "success" if rc == 0 else "failure"
            except subprocess.TimeoutExpired:
                conclusion = "timed_out"
            out.write(f"\n# exit {rc} → {conclusion}\n".encode())
    forge.record_check(CHECK_NAME, sha, "completed", conclusion, url, creator=ci)
    return CIResult(pr.number, sha, conclusion, time.perf_counter() - t0, log, rc)


def report(
    forge: LocalForge, pr: PullRequest, res: CIResult, label: str, *, evidence: str = ""
) -> None:
    """What the GitHub test workflow's `report` job does: on failure a comment naming the run
    and its log (and `evidence`, the log's lines that matter: controller/missing.py), and the
    label; on success the label goes."""
    from stablectl.forge.base import Marker

    has = label in pr.labels
    if res.conclusion == "success":
        if has:
            forge.set_labels(pr.number, [lb for lb in pr.labels if lb != label])
        return

    marker = Marker("tests-failed", "", extra={"sha": res.sha}).render()
    forge.comment(
        pr.number,
        user=forge.ci_identity,
        body=f"The test suite failed on {res.sha} ({res.conclusion}, exit {res.returncode}); "
        f"log: {res.log.as_uri()}{evidence}\n\nA maintainer can run it "
        f"again with `/stablectl retest`.\n\n{marker}",
    )
    if not has:
        forge.set_labels(pr.number, sorted({*pr.labels, label}))


def needs_run(forge: LocalForge, pr: PullRequest) -> bool:
    """No finished `local-ci` check by the local CI on the PR's current head yet (anyone
    else's result on it is not the CI's)."""
    return not any(
        c.name == CHECK_NAME and c.status == "completed" and c.source == forge.ci_identity
        for c in forge.checks(pr.head_sha)
    )


def _checkout(fork: Path, sha: str, dest: Path) -> None:
    what = f"cannot check out {sha[:12]} for CI"
    git(["clone", "-q", "--shared", "--no-checkout", str(fork), str(dest)], what=what)
    git(["-C", str(dest), "checkout", "-q", "--detach", sha], what=what)
