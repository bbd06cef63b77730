"""Benchmark: plan on a CPython-scale history, and in-memory picks vs worktree cherry-picks.

    python bench/plan_bench.py                       # synthetic history (generated once, cached)
    python bench/plan_bench.py --picks 100
    python bench/plan_bench.py --debian /path/to/python3.11_3.11.2.orig.tar.gz \\
        /path/to/python3.11_3.11.2-6+deb12u8.debian.tar.xz   # also on real CPython 3.11.2

Every figure is printed beside a baseline measured in the same run: the git CLI doing
comparable work (a `git log --name-only` scan of the same ranges; `git cherry-pick -x` in a
worktree, which is what cherry_picker does). No assertion on time: this is run by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth import Params, generate

from stablectl.controller.workspace import Workspace
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.scan import CommitFacts, CommitIndex
from stablectl.policy import load_policy_text

SERIES = [("3.10.5", "3.10"), ("3.11.4", "3.11"), ("3.12.3", "3.12"), ("3.13.1", "3.13")]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@e", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def policy_text(upstream: Path) -> str:
    series = "\n".join(
        f'  - {{name: "{n}", base: v{n}, sources: ["{b}", main]}}' for n, b in SERIES
    )
    return f"""\
project: synth
upstream: {{git: {upstream}, main: main}}
fork: {{git: {upstream}}}
series:
{series}
flags:
  - {{name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}}
  - {{name: cve, security: true, message: 'CVE-\\d{{4}}-\\d{{4,}}'}}
"""


def add_commits(repo: pygit2.Repository, n: int) -> None:
    """n new commits on main, every tenth a security fix."""
    sig = pygit2.Signature("New", "new@example.org", int(time.time()), 0)
    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    for i in range(n):
        tb = repo.TreeBuilder(tip.tree)
        blob = repo.create_blob(f"new {time.time()} {i}\n".encode())
        tb.insert(f"new{i}.txt", blob, pygit2.enums.FileMode.BLOB)
        if i % 10 == 0:
            misc = tip.tree["Misc"]
            mb = repo.TreeBuilder(repo[misc.id])
            news = repo[mb.get("NEWS.d").id]
            nb = repo.TreeBuilder(news)
            nxt = repo[nb.get("next").id]
            xb = repo.TreeBuilder(nxt)
            sec = repo[xb.get("Security").id]
            sb = repo.TreeBuilder(sec)
            sb.insert(f"new-{time.time()}-{i}.rst", blob, pygit2.enums.FileMode.BLOB)
            xb.insert("Security", sb.write(), pygit2.enums.FileMode.TREE)
            nb.insert("next", xb.write(), pygit2.enums.FileMode.TREE)
            mb.insert("NEWS.d", nb.write(), pygit2.enums.FileMode.TREE)
            tb.insert("Misc", mb.write(), pygit2.enums.FileMode.TREE)
        oid = repo.create_commit(
            "refs/heads/main",
            sig,
            sig,
            f"gh-{900000 + i}: New (#{900001 + i})\n",
            tb.write(),
            [tip.id],
        )
        tip = repo[oid].peel(pygit2.Commit)


def git_scan(upstream: Path, engine: Workspace) -> float:
    """The git CLI reading the same ranges with changed paths (what a shell script would do)."""
    t = time.perf_counter()
    for name, branch in SERIES:
        base = f"v{name}"
        for ref in (branch, "main"):
            git(
                "--git-dir",
                str(upstream),
                "log",
                "--no-merges",
                "--name-only",
                "--format=%H%n%B",
                ref,
                f"^{base}",
            )
    return time.perf_counter() - t


def bench_synthetic(args: argparse.Namespace) -> None:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    template = generate(cache, Params())
    print(f"synthetic history: {template.name} ({time.perf_counter() - t:.1f}s to get)")
    work = Path(tempfile.mkdtemp(prefix="stablectl-bench-"))
    try:
        upstream = work / "upstream.git"
        git("clone", "-q", "--bare", "--shared", str(template), str(upstream))
        repo = pygit2.Repository(str(upstream))
        n_main = sum(1 for _ in repo.walk(repo.references["refs/heads/main"].target))
        print(f"  main: {n_main:,} commits; series: {', '.join(n for n, _ in SERIES)}\n")
        policy = load_policy_text(policy_text(upstream))
        state = work / "state"

        engine = Workspace(policy, state)
        t_fetch = timed(engine.fetch)
        # --no-local: a real pack transfer, as from a remote (not hard links).
        t_clone = timed(
            lambda: git("clone", "-q", "--mirror", "--no-local", str(upstream), str(work / "m.git"))
        )
        os.environ["STABLECTL_FETCH"] = "pygit2"
        t_fetch_lg2 = timed(Workspace(policy, work / "state-pygit2").fetch)
        del os.environ["STABLECTL_FETCH"]
        t_cold = timed(lambda: engine.plan())
        plan = engine.plan()
        engine.close()
        flagged = sum(len(sp.fixes) for sp in plan.series)
        pending = sum(1 for sp in plan.series for f in sp.fixes if f.status.startswith("new-"))
        conflicts = sum(1 for sp in plan.series for f in sp.fixes if f.status == "new-conflict")
        t_git = git_scan(upstream, engine)

        def warm() -> None:
            e = Workspace(policy, state)
            e.plan()
            e.close()

        warm_runs = [timed(warm) for _ in range(3)]
        t_warm = statistics.median(warm_runs)
        policy_file = work / "p.yaml"
        policy_file.write_text(policy_text(upstream))
        cmd = [
            sys.executable,
            "-m",
            "stablectl",
            "--state-dir",
            str(state),
            "plan",
            "--offline",
            "--json",
            "--policy",
            str(policy_file),
        ]
        proc_runs = [
            timed(lambda: subprocess.run(cmd, capture_output=True, check=True)) for _ in range(3)
        ]
        print(
            f"flagged fixes: {flagged:,} over 4 series ({pending:,} to pick, "
            f"{conflicts} conflicting)\n"
        )
        print(f"{'measure':44} {'stablectl':>10} {'git CLI':>10} {'ratio':>8}")
        print(
            f"{'first fetch (git: clone --mirror --no-local)':44} {t_fetch:9.2f}s "
            f"{t_clone:9.2f}s {t_fetch / t_clone:7.1f}x"
        )
        print(
            f"{'  same with STABLECTL_FETCH=pygit2':44} {t_fetch_lg2:9.2f}s "
            f"{t_clone:9.2f}s {t_fetch_lg2 / t_clone:7.1f}x"
        )
        print(
            f"{'cold plan (scan+select+pick, git: log scan)':44} {t_cold:9.2f}s "
            f"{t_git:9.2f}s {t_cold / t_git:7.1f}x"
        )
        print(
            f"{'warm plan, nothing new (in process)':44} {t_warm:9.3f}s "
            f"{t_git:9.2f}s {t_warm / t_git:7.3f}x"
        )
        print(
            f"{'warm plan, nothing new (stablectl process)':44} "
            f"{statistics.median(proc_runs):9.3f}s"
        )
        for n in (10, 100, 1000):
            add_commits(pygit2.Repository(str(upstream)), n)
            e = Workspace(policy, state)
            e.fetch()
            t_inc = timed(lambda e=e: e.plan())  # type: ignore[misc]
            walked = e.index.stats["walked"]
            e.close()
            print(
                f"{f'warm plan after +{n} commits on main':44} {t_inc:9.3f}s "
                f"{'':>10} {'':>8}  (walked {walked} new commits)"
            )
        print()
        bench_picks(upstream, "v3.11.4", "3.11.4", plan, args.picks, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_picks(upstream: Path, base: str, series: str, plan: object, k: int, work: Path) -> None:
    from stablectl.controller.plan import Plan

    assert isinstance(plan, Plan)
    sp = next(s for s in plan.series if s.series.name == series)
    sources = [f.chosen.source.sha for f in sp.fixes if f.chosen is not None][:k]
    compare_picks(upstream, base, sources, work, f"synthetic, series {series}")


def compare_picks(upstream: Path, base: str, sources: list[str], work: Path, label: str) -> None:
    repo = pygit2.Repository(str(upstream))
    onto = str(repo.revparse_single(base).peel(pygit2.Commit).id)
    picker = Picker(repo, Committer("b", "b@e", time=1), levers=("paths", "libgit2"))
    full = Picker(repo, Committer("b", "b@e", time=1), levers=("libgit2",))
    # The scan computes every commit's changed paths (for path flags); picks reuse them.
    index = CommitIndex(repo, None)
    known = {s: list((index.facts(s) or _no_facts()).paths) for s in sources}

    def chain(p: Picker, with_paths: bool) -> tuple[float, int]:
        tip, clean = onto, 0
        t = time.perf_counter()
        for s in sources:
            r = p.pick(s, tip, paths=known[s] if with_paths else None)
            if r.outcome == "clean" and r.commit:
                tip, clean = r.commit, clean + 1
        return time.perf_counter() - t, clean

    # Each variant twice, the faster run counts (warm object cache for all alike).
    t_own = min(chain(picker, False)[0] for _ in range(2))
    t_mem, clean = min(chain(picker, True) for _ in range(2))
    t_full, clean_full = min(chain(full, False) for _ in range(2))
    wt = work / f"wt-{len(sources)}-{time.time_ns()}"
    t_checkout = timed(
        lambda: git("--git-dir", str(upstream), "worktree", "add", "-q", "--detach", str(wt), onto)
    )
    t = time.perf_counter()
    clean_git = 0
    for s in sources:
        proc = subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@e", "cherry-pick", "-x", s],
            cwd=wt,
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            clean_git += 1
        else:
            subprocess.run(["git", "cherry-pick", "--abort"], cwd=wt, capture_output=True)
    t_git = time.perf_counter() - t
    git("--git-dir", str(upstream), "worktree", "remove", "--force", str(wt))
    n = len(sources)
    print(
        f"picks ({label}): {n} chained picks; clean: stablectl {clean}, "
        f"whole-tree merge {clean_full}, git {clean_git}"
    )
    print(f"{'measure':44} {'ms/pick':>10} {'vs git':>10}")
    print(
        f"{'git cherry-pick -x in a worktree (baseline)':44} {t_git / n * 1000:10.2f} {1.0:9.1f}x"
    )
    print(
        f"{'stablectl in-memory pick, as in plan':44} {t_mem / n * 1000:10.2f} "
        f"{t_git / t_mem:9.1f}x faster"
    )
    print(
        f"{'  same, computing its own tree diff':44} {t_own / n * 1000:10.2f} "
        f"{t_git / t_own:9.1f}x faster"
    )
    print(
        f"{'libgit2 merge_trees of whole trees':44} {t_full / n * 1000:10.2f} "
        f"{t_git / t_full:9.1f}x faster"
    )
    print(f"{'(worktree checkout, paid once per run)':44} {t_checkout * 1000:10.0f}ms\n")


def _no_facts() -> CommitFacts:
    return CommitFacts("", (), "", "", 0, 0, "", ())


def bench_debian(orig: Path, debian: Path, work_root: Path) -> None:
    """Real CPython 3.11.2 (4,4xx files) and Debian's format-patch exports of upstream
    security fixes: chained picks onto v3.11.2, in memory vs in a worktree."""
    work = Path(tempfile.mkdtemp(prefix="stablectl-bench-deb-", dir=work_root))
    try:
        src = work / "src"
        with tarfile.open(orig) as tf:
            tf.extractall(work / "x", filter="data")
        top = next((work / "x").iterdir())
        shutil.move(str(top), str(src))
        with tarfile.open(debian) as tf:
            tf.extractall(work / "deb", filter="data")
        git("init", "-q", "-b", "main", cwd=src)
        git("add", "-A", cwd=src)
        git("commit", "-qm", "Python 3.11.2", cwd=src)
        git("tag", "v3.11.2", cwd=src)
        files = len(git("ls-files", cwd=src).splitlines())
        patches = work / "deb" / "debian" / "patches"
        order = [
            ln.split()[0]
            for ln in (patches / "series").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
        applied = 0
        for name in order:
            p = patches / name
            if not p.read_text(errors="replace").startswith("From "):
                continue
            proc = subprocess.run(
                ["git", "-c", "user.name=b", "-c", "user.email=b@e", "am", "-q", "-3", str(p)],
                cwd=src,
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                subprocess.run(["git", "am", "--abort"], cwd=src, capture_output=True)
            else:
                applied += 1
        shas = git("rev-list", "--reverse", "v3.11.2..main", cwd=src).split()
        bare = work / "repo.git"
        git("clone", "-q", "--bare", str(src), str(bare))
        print(
            f"real CPython 3.11.2: {files:,} files; {applied} of Debian's format-patch "
            f"exports applied as commits"
        )
        compare_picks(bare, "v3.11.2", shas, work, "Debian's security commits onto v3.11.2")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", default=str(Path(__file__).parent / ".cache"))
    ap.add_argument("--picks", type=int, default=50)
    ap.add_argument("--debian", nargs=2, metavar=("ORIG_TARBALL", "DEBIAN_TARBALL"))
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    if not args.skip_synthetic:
        bench_synthetic(args)
    if args.debian:
        bench_debian(Path(args.debian[0]), Path(args.debian[1]), Path(tempfile.gettempdir()))


if __name__ == "__main__":
    main()
