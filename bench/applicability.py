"""How many flagged fixes of an old line do not concern it, and why (issue 16, applicability).

    python bench/applicability.py /path/to/cpython.git [--line 3.10.2:3.10 --line 3.11.0:3.11]

For each line, a series anchored at the tag with `policies/cpython.yaml`'s commit-side flag
rules and sources [3.x, main], planned over the repository's whole history (MIPS/cpython: to March
2023) twice: with applicability judged (the default) and with `applicability.skip: false` (every
conflict a draft PR, as before). Prints the statuses, the not-applicable reasons by kind, and
the draft PRs a maintainer no longer has to read. The baseline is the same plan without the
judgement, in the same process. Nothing here is a test: the repository is public and large,
fetched by hand, never committed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_history import prepare_cache

from stablectl.controller.plan import Plan, PlannedFix
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace
from stablectl.policy import Policy, Series, load_policy, load_policy_text

ROOT = Path(__file__).resolve().parents[1]


def offline_policy(series: list[Series], work: Path, **update: Any) -> Policy:
    """`policies/cpython.yaml` for `series` over the cache laid out in `work`, with its
    commit-side rules only (the advisory database and issue/label rules need the network or
    a forge), and more top-level fields from `update`."""
    base = load_policy(ROOT / "policies" / "cpython.yaml")
    return base.model_copy(
        update={
            "upstream": base.upstream.model_copy(update={"git": str(work / "up.git")}),
            "fork": base.fork.model_copy(update={"git": str(work / "fork.git")}),
            "forge": base.forge.model_copy(update={"kind": "local"}),
            "series": series,
            "flags": [r for r in base.flags if r.advisories is None and not r.needs_forge],
            **update,
        }
    )


def series_of(yaml: str) -> list[Series]:
    """Series from their YAML (a flow mapping each)."""
    return load_policy_text(f"""\
project: x
upstream: {{git: x}}
fork: {{git: x}}
series: [{yaml}]
flags: [{{name: x, message: x}}]
""").series


def line_policy(name: str, branch: str, work: Path, *, skip: bool) -> Policy:
    series = series_of(f'{{name: "{name}", base: v{name}, sources: ["{branch}", main]}}')
    base = load_policy(ROOT / "policies" / "cpython.yaml")
    return offline_policy(
        series, work, applicability=base.applicability.model_copy(update={"skip": skip})
    )


def kind_of(pf: PlannedFix) -> str:
    """The verdict's rule (applicability.py), or why a follow-up went with its fix."""
    return pf.verdict or "other"


def line_refs(repo: pygit2.Repository, name: str, branch: str) -> tuple[dict[str, str], str]:
    """The upstream refs a line anchored at `v<name>` with sources [branch, main] reads, and
    its base commit (where the stable branch starts)."""
    refs = {
        "refs/heads/main": str(repo.branches.local["main"].target),
        f"refs/heads/{branch}": str(repo.branches.local[branch].target),
        f"refs/tags/v{name}": str(repo.references[f"refs/tags/v{name}"].target),
    }
    return refs, str(repo.revparse_single(f"v{name}").peel(pygit2.Commit).id)


def run_lines(
    run_line: Callable[[Path, str, str, Path], None], doc: str | None, prefix: str
) -> None:
    """A bench's command line: REPO [--line NAME:BRANCH ...], each line run in a temp dir."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("repo", type=Path)
    ap.add_argument("--line", action="append", default=[], help="NAME:BRANCH, e.g. 3.10.2:3.10")
    args = ap.parse_args()
    lines = [tuple(x.split(":", 1)) for x in args.line] or [("3.10.2", "3.10"), ("3.11.0", "3.11")]
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for name, branch in lines:
            run_line(args.repo, name, branch, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(repo_path: Path, name: str, branch: str, work: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    refs, base_sha = line_refs(repo, name, branch)
    plans: dict[bool, Plan] = {}
    seconds: dict[bool, float] = {}
    for skip in (False, True):
        state = work / f"state-{name}-{skip}"
        engine = Workspace(line_policy(name, branch, work, skip=skip), state)
        prepare_cache(engine, repo_path, refs, {f"refs/heads/{name}-stable": base_sha})
        t = time.perf_counter()
        plans[skip] = engine.plan()
        seconds[skip] = time.perf_counter() - t
        engine.close()
    before = Counter(str(pf.status) for pf in plans[False].series[0].fixes)
    after = Counter(str(pf.status) for pf in plans[True].series[0].fixes)
    na = [pf for pf in plans[True].series[0].fixes if pf.status == FixState.NOT_APPLICABLE]
    kinds = Counter(kind_of(pf) for pf in na)
    security = sum(1 for pf in na if pf.candidate.fix.security)
    print(f"{name}-stable (sources {branch}, main; upstream to {branch} and main's tips):")
    print(f"  flagged {sum(after.values())}; without the judgement: {dict(sorted(before.items()))}")
    print(f"  with it: {dict(sorted(after.items()))}")
    print(
        f"  not applicable {len(na)} ({security} security) of "
        f"{before.get('new-conflict', 0)} conflicts: {dict(kinds)}"
    )
    print(f"  plan {seconds[False]:.1f}s without, {seconds[True]:.1f}s with (same process)")
    for pf in na:
        print(f"    n/a       {pf.candidate.fix.subject[:56]:56}  {pf.not_applicable[:100]}")
    for pf in plans[True].series[0].fixes:
        if pf.status == FixState.APPLIED and pf.applied:
            print(f"    applied   {pf.candidate.fix.subject[:56]:56}  {pf.applied[:100]}")
        if pf.status == FixState.WAITING:
            print(f"    waiting   {pf.candidate.fix.subject[:56]:56}  {pf.waits_for[:100]}")
        if pf.status == FixState.NEW_CONFLICT and pf.attempts:
            src = pf.attempts[0].source
            files = ", ".join(c.path for c in pf.attempts[0].result.conflicts[:2])
            print(f"    conflict  {pf.candidate.fix.subject[:56]:56}  {src.kind}: {files}")


if __name__ == "__main__":
    run_lines(run, __doc__, "stablectl-applicability-")
