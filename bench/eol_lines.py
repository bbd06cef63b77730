"""Old and end-of-life lines over CPython's real history: verdicts and where a plan's time goes.

    python bench/eol_lines.py /path/to/cpython.git [--line 2.7.18 --line 3.6.8 --line 3.9.2]
        [--dump DIR] [--downstream "2.7.18=Debian python2.7 2.7.18-8+deb11u1=debian/patches"]

Each line is a series anchored at its tag with `policies/cpython.yaml`'s commit-side flag rules
(the advisory database and forge rules need the network). 2.7.18 and 3.9.2 are that file's own
series (upstream_end, build profile, 2.7's renames); 3.6.8 is anchored the same way, its branch
ended 2021-12-23, reading the nearest newer branches by default. The stable branch is at the
tag. Each is planned cold (a fresh state directory) then warm (the same state again), and the
plan's own split is printed: scan (reading the windows' history: each range folded once,
messages, changed paths and the flag rules per commit), flag (making the fixes: grouping,
follow-ups, patch-ids, states), picks, applicability, prerequisites. The baselines, in the
same process: today's line (`--today`, a 3.11.2 line anchored a month before the history ends,
planned first) for each far line's cold plan, and the cold plan for its warm one. Each cold
plan starts its own worker processes. Nothing here is a test: the repository is public and
large, fetched by hand, never committed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from applicability import offline_policy, series_of
from real_history import prepare_cache

from stablectl.controller.plan import Plan, PlannedFix
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace
from stablectl.gitops import workers
from stablectl.policy import Downstream, Policy, Series, load_policy

ROOT = Path(__file__).resolve().parents[1]
EXTRA = {
    "3.6.8": """{name: "3.6.8", base: v3.6.8, sources: ["3.6"], upstream_end: {date: 2021-12-23},
      not_built: ["PC/*", "PCbuild/*", "Modules/expat/*", "Modules/_decimal/libmpdec/*"]}""",
}


def line_policy(name: str, work: Path, downstream: list[Downstream] | None = None) -> Policy:
    base = load_policy(ROOT / "policies" / "cpython.yaml")
    series: list[Series] = [s for s in base.series if s.name == name] or series_of(EXTRA[name])
    if downstream:
        series = [s.model_copy(update={"downstream": downstream}) for s in series]
    return offline_policy(series, work)


def refs_of(repo: pygit2.Repository, s: Series) -> tuple[dict[str, str], str]:
    """Every version branch and main (what upstream has), the line's tag, its base commit."""
    refs = {
        f"refs/heads/{b}": str(repo.branches.local[b].target)
        for b in repo.branches.local
        if b == "main" or b[:1].isdigit()
    }
    refs[f"refs/tags/{s.base}"] = str(repo.references[f"refs/tags/{s.base}"].target)
    return refs, str(repo.revparse_single(s.base).peel(pygit2.Commit).id)


def split(plan: Plan, seconds: float) -> str:
    st = plan.stats
    parts = ", ".join(
        f"{k} {st.get(f'seconds_{k}', 0):.1f}s"
        for k in ("scan", "flag", "pick", "applicability", "prerequisites")
    )
    return f"{seconds:.1f}s ({parts}; walked {st.get('walked', 0)} commits)"


def run(
    repo_path: Path,
    name: str,
    work: Path,
    today: float | None = None,
    dump: Path | None = None,
    downstream: list[Downstream] | None = None,
    tree_dir: Path | None = None,
) -> float:
    """Plan the line cold then warm, print its verdicts and times; its cold seconds."""
    repo = pygit2.Repository(str(repo_path))
    policy = line_policy(name, work, downstream)
    s = policy.series[0]
    refs, base_sha = refs_of(repo, s)
    state = work / f"state-{name}"
    times: list[tuple[Plan, float]] = []
    graph = 0.0
    for i in range(2):
        engine = Workspace(policy, state)
        if i == 0:
            prepare_cache(engine, repo_path, refs, {f"refs/heads/{s.stable_branch}": base_sha})
            t = time.perf_counter()
            engine.cache.write_commit_graph()  # what the first fetch of upstream does
            graph = time.perf_counter() - t
        if i == 0:
            workers.shutdown()  # each cold plan starts its own worker processes
        t = time.perf_counter()
        plan = engine.plan()
        times.append((plan, time.perf_counter() - t))
        engine.close()
    plan = times[0][0]
    sp = plan.series[0]
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"{name}.json").write_text(json.dumps(plan.to_json(), indent=1, default=str))
    statuses = Counter(str(pf.status) for pf in sp.fixes)
    verdicts = Counter(str(pf.verdict) for pf in sp.fixes if pf.verdict)
    print(f"{name}-stable (searched {', '.join(sp.selection.searched)}):")
    print(f"  flagged {len(sp.fixes)}: {dict(sorted(statuses.items()))}")
    print(f"  verdicts by rule: {dict(sorted(verdicts.items()))}")
    print(f"  commit-graph written once per cache (the first fetch): {graph:.1f}s")
    vs = f"  ({times[0][1] / today:.2f}x today's line)" if today else ""
    print(f"  cold {split(*times[0])}{vs}")
    print(f"  warm {split(*times[1])}  ({times[1][1] / times[0][1]:.3f}x the cold plan)")
    if tree_dir is not None:
        compare_adapted(pygit2.Repository(str(engine.cache.path)), sp.fixes, tree_dir)
    for pf in sp.fixes:
        if pf.status in (FixState.NOT_APPLICABLE, FixState.APPLIED) and pf.verdict:
            why = pf.not_applicable or pf.applied
            print(f"    {pf.verdict!s:18} {pf.candidate.fix.subject[:50]:50}  {why[:90]}")
    return times[0][1]


def compare_adapted(repo: pygit2.Repository, fixes: list[PlannedFix], tree_dir: Path) -> None:
    """For each fix adapted from a downstream patch: does each file the adaptation changes
    equal the distribution's own tree (its whole queue applied to the release tarball)?"""
    for pf in fixes:
        a = pf.adapted_from
        if a is None:
            continue
        tree = repo[pygit2.Oid(hex=a.tree)].peel(pygit2.Tree)
        same, differ = [], []
        for path in a.change.files:
            try:
                ours = bytes(repo[tree[path].id].read_raw())
            except KeyError:
                ours = b""
            theirs = (tree_dir / path).read_bytes() if (tree_dir / path).is_file() else b""
            (same if ours == theirs else differ).append(path)
        print(
            f"    adapted {pf.candidate.fix.key[:10]} from {a.patch.name}: "
            f"{len(same)} file(s) as in the distribution's tree"
            + (f", differs in {', '.join(differ)}" if differ else "")
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("repo", type=Path)
    ap.add_argument("--line", action="append", default=[], help="2.7.18, 3.6.8 or 3.9.2")
    ap.add_argument(
        "--today",
        default="3.11.2",
        help="the baseline: a line anchored near the history's end (3.11.2, Feb 2023); '' for none",
    )
    ap.add_argument("--dump", type=Path, help="write each line's plan JSON to DIR/<line>.json")
    ap.add_argument(
        "--downstream",
        action="append",
        default=[],
        metavar="LINE=NAME=PATH",
        help="a downstream source for a line (e.g. 2.7.18=Debian=debian/patches)",
    )
    ap.add_argument(
        "--downstream-tree",
        type=Path,
        help="the distribution's patched tree (its tarball with its whole queue applied): "
        "each downstream adaptation's files are compared with it",
    )
    args = ap.parse_args()
    extra: dict[str, list[Downstream]] = {}
    for spec in args.downstream:
        line, name, path = spec.split("=", 2)
        extra.setdefault(line, []).append(Downstream(name=name, patches=path))
    work = Path(tempfile.mkdtemp(prefix="stablectl-eol-"))
    try:
        today = run(args.repo, args.today, work) if args.today else None
        for name in args.line or ["2.7.18", "3.6.8", "3.9.2"]:
            tree = args.downstream_tree if name in extra else None
            run(args.repo, name, work, today, args.dump, extra.get(name), tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
