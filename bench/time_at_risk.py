"""Time at risk: how long a CPython security fix waits for a release, upstream and with
stablectl (issue 16).

    python bench/time_at_risk.py /path/to/cpython.git [--branch 3.8 ...] [--ci-hours 3]
        [--review-hours 24] [--quiet-hours 24] [--window-hours 48]

For every security fix on CPython's 3.8–3.11 maintenance branches after their x.0 release (a
commit adding a `Misc/NEWS.d/next/Security/` entry; MIPS/cpython: history to March 2023):

- **upstream**: days from the upstream commit (the original its trailer names, else the
  branch commit) to the first final release tag `v3.x.N` whose history has it;
- **stablectl**: days from the same commit to a stablectl point release of a line on that
  branch, simulated on an hourly clock as `sync` behaves: at the first scheduled run after the
  fix is on a source, its PR opens; its CI takes `--ci-hours`; a maintainer approves
  `--review-hours` after the PR opened; the next run after both merges it. A release PR is
  proposed once a security fix is merged and the branch has been quiet `--quiet-hours`
  (`release.quiet_period_hours`); it states `--window-hours` of review
  (`release.review_hours`), restarted whenever new fixes merge into it; the next run after the
  deadline tags it (the maintainers approved it within the window).

Two readings of "on a source": the **original** (stablectl picks `main`'s commit as soon as it
exists: the best case, when it applies) and the **branch backport** (it waits for upstream's
own backport to the maintenance branch: the conservative case). The baseline is upstream's
own release, computed in the same run. Nothing here is a test; the history is public and
large, fetched by hand, never committed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from stablectl.gitops.messages import parse_message

HOUR = 3600
DAY = 24 * HOUR


@dataclass
class Fix:
    sha: str
    subject: str
    original_time: int  # the upstream commit
    branch_time: int  # the maintenance branch's commit
    upstream_release: int | None  # first final release tag with it (None: none by the end)


def security_fixes(repo: pygit2.Repository, branch: str) -> list[Fix]:
    tip = repo.branches.local[branch].target if branch in repo.branches.local else None
    if tip is None:
        tip = repo.references[f"refs/remotes/origin/{branch}"].target
    x0 = repo.revparse_single(f"v{branch}.0").peel(pygit2.Commit).id
    tags = []
    for ref in repo.references:
        m = re.fullmatch(rf"refs/tags/v{re.escape(branch)}\.(\d+)", ref)
        if m and int(m.group(1)) > 0:
            obj = repo.revparse_single(ref)
            when = obj.tagger.time if isinstance(obj, pygit2.Tag) and obj.tagger else 0
            commit = obj.peel(pygit2.Commit)
            tags.append((int(m.group(1)), commit.id, when or commit.commit_time))
    tags.sort()
    walker = repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    walker.hide(x0)
    out = []
    for c in walker:
        if len(c.parents) != 1:
            continue
        diff = repo.diff(c.parents[0], c)
        if not any(
            d.delta.new_file.path.startswith("Misc/NEWS.d/next/Security/")
            and d.delta.status == pygit2.enums.DeltaStatus.ADDED
            for d in diff
        ):
            continue
        info = parse_message(c.message)
        original = c.commit_time
        for named in info.cherry_picked_from:
            with contextlib.suppress(KeyError, ValueError):
                original = min(
                    original, repo.revparse_single(named).peel(pygit2.Commit).commit_time
                )
        released = next(
            (when for _, tid, when in tags if tid == c.id or repo.descendant_of(tid, c.id)), None
        )
        out.append(Fix(str(c.id), info.subject, original, c.commit_time, released))
    return out


def simulate(
    available: list[int], *, ci: int, review: int, quiet: int, window: int, end: int
) -> list[int | None]:
    """The release time of each fix (None: not released by `end`), on an hourly clock."""
    n = len(available)
    tick = lambda t: (t + HOUR - 1) // HOUR * HOUR  # noqa: E731 - the next scheduled run
    opened = [tick(a) for a in available]
    merged = [tick(max(o + ci, o + review)) for o in opened]
    released: list[int | None] = [None] * n
    events = sorted(set(merged))
    t = tick(min(merged)) if merged else end
    unreleased: set[int] = set()
    proposal: tuple[int, frozenset[int]] | None = None  # deadline, fixes in it
    last_merge = 0
    while t <= end and (unreleased or any(m >= t for m in events)):
        for i in range(n):
            if merged[i] == t:
                unreleased.add(i)
                last_merge = t
        if proposal is not None and proposal[1] != frozenset(unreleased):
            proposal = (t + window, frozenset(unreleased))  # re-proposed: the window restarts
        if proposal is None and unreleased and t - last_merge >= quiet:
            proposal = (t + window, frozenset(unreleased))
        if proposal is not None and t >= proposal[0]:
            for i in proposal[1]:
                released[i] = t
            unreleased -= proposal[1]
            proposal = None
        t += HOUR
    return released


def days(xs: list[float]) -> str:
    if not xs:
        return "-"
    return (
        f"median {statistics.median(xs):.0f} d (mean {statistics.mean(xs):.0f}, max {max(xs):.0f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--branch", action="append", default=[])
    ap.add_argument("--ci-hours", type=int, default=3)
    ap.add_argument("--review-hours", type=int, default=24)
    ap.add_argument("--quiet-hours", type=int, default=24)
    ap.add_argument("--window-hours", type=int, default=48)
    args = ap.parse_args()
    repo = pygit2.Repository(str(args.repo))
    end = repo.revparse_single("main").peel(pygit2.Commit).commit_time
    knobs = dict(
        ci=args.ci_hours * HOUR,
        review=args.review_hours * HOUR,
        quiet=args.quiet_hours * HOUR,
        window=args.window_hours * HOUR,
        end=end + 30 * DAY,
    )
    print(
        f"policy: hourly sync, CI {args.ci_hours} h, backport approval {args.review_hours} h "
        f"after the PR, quiet period {args.quiet_hours} h, release review window "
        f"{args.window_hours} h (restarted by new merges)"
    )
    every: dict[str, list[float]] = {"upstream": [], "original": [], "backport": []}
    for branch in args.branch or ["3.8", "3.9", "3.10", "3.11"]:
        fixes = security_fixes(repo, branch)
        rel_o = simulate([f.original_time for f in fixes], **knobs)
        rel_b = simulate([f.branch_time for f in fixes], **knobs)
        up = [(f.upstream_release - f.original_time) / DAY for f in fixes if f.upstream_release]
        so = [(r - f.original_time) / DAY for f, r in zip(fixes, rel_o, strict=True) if r]
        sb = [(r - f.original_time) / DAY for f, r in zip(fixes, rel_b, strict=True) if r]
        unshipped = sum(1 for f in fixes if f.upstream_release is None)
        every["upstream"] += up
        every["original"] += so
        every["backport"] += sb
        print(
            f"{branch}: {len(fixes)} security fixes after v{branch}.0 "
            f"({unshipped} in no upstream release by March 2023)"
        )
        print(f"  upstream release:            {days(up)}")
        print(f"  stablectl, from the original: {days(so)}")
        print(f"  stablectl, from the backport: {days(sb)}")
    print("all branches:")
    for k, label in (
        ("upstream", "upstream release"),
        ("original", "stablectl, from the original"),
        ("backport", "stablectl, from the backport"),
    ):
        print(f"  {label:29s} {days(every[k])} over {len(every[k])} fixes")


if __name__ == "__main__":
    main()
