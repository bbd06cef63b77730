"""Run stablectl's plan over real stable history and compare with what people shipped.

    python bench/real_history.py systemd /path/to/systemd-stable.git \\
        --branch v250-stable --branch v251-stable --branch v253-stable
    python bench/real_history.py cpython /path/to/cpython.git

systemd: for each vNNN-stable branch, a series anchored at tag vNNN whose flag rule lists
exactly the originals the real backports name; stablectl selects and picks them (chained, onto
the bare tag) from main and the newer stable branches, and each pick is compared with the real
backport by patch-id (libgit2's, on both sides).

cpython: series anchored at v3.10.8 and v3.11.0 with `policies/cpython.yaml`'s flag rules, over
what upstream had committed when v3.10.10 and v3.11.2 were tagged; flagged fixes are compared
with the Security sections of those releases' changelogs (Misc/NEWS.d/3.x.y.rst), and each pick
with the backport CPython shipped.

Nothing here is a test: the repositories are public and large, fetched by hand, never committed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablectl.controller.plan import Plan
from stablectl.controller.workspace import Workspace
from stablectl.gitops.cache import UPSTREAM_TAGS
from stablectl.gitops.diffs import commit_patch_id
from stablectl.gitops.messages import parse_message
from stablectl.policy import load_policy, load_policy_text

ROOT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def shared_clone(src: Path, dst: Path, refs: dict[str, str]) -> None:
    """A bare repository sharing src's objects, holding exactly `refs`."""
    subprocess.run(["git", "init", "-q", "--bare", str(dst)], check=True)
    (dst / "objects" / "info" / "alternates").write_text(str(src / "objects") + "\n")
    repo = pygit2.Repository(str(dst))
    for name, target in refs.items():
        repo.references.create(name, pygit2.Oid(hex=target), force=True)


def prepare_cache(
    engine: Workspace, src: Path, upstream: dict[str, str], fork: dict[str, str]
) -> None:
    """Lay out stablectl's cache directly (objects borrowed from `src` through alternates):
    the public mirrors here are partial clones, which git will not pack from. The plan then
    runs --offline on it, exactly as after a fetch."""
    refs = {
        (
            f"refs/remotes/upstream/{k[11:]}"
            if k.startswith("refs/heads/")
            else f"{UPSTREAM_TAGS}{k[10:]}"
            if k.startswith("refs/tags/")
            else k
        ): v
        for k, v in upstream.items()
    }
    refs.update({f"refs/remotes/fork/{k[11:]}": v for k, v in fork.items()})
    shared_clone(src, engine.cache.path, refs)


def pid(repo: pygit2.Repository, sha: str) -> str | None:
    try:
        return commit_patch_id(repo, repo[sha].peel(pygit2.Commit))
    except (KeyError, ValueError, pygit2.GitError):
        return None


def summarize(repo: pygit2.Repository, plan: Plan, real: dict[str, str]) -> dict[str, Any]:
    """Compare each planned fix with the real backport of the same fix (`real`: member → real
    backport commit)."""
    out: Counter[str] = Counter()
    ms: list[float] = []
    levers: Counter[str] = Counter()
    for sp in plan.series:
        for pf in sp.fixes:
            out["flagged"] += 1
            out[pf.status] += 1
            for a in pf.attempts:
                ms.append(a.result.seconds * 1000)
            if pf.chosen is not None and pf.chosen.result.outcome == "clean":
                levers[pf.chosen.result.lever or "?"] += 1
                if pf.chosen.source.kind != "original":
                    out[f"source:{pf.chosen.source.kind}"] += 1
                target = next(
                    (
                        real[m]
                        for m in [pf.candidate.fix.key, *pf.candidate.fix.members]
                        if m in real
                    ),
                    None,
                )
                if target is not None:
                    out["compared"] += 1
                    mine = pid(repo, pf.chosen.result.commit or "")
                    if mine is not None and mine == pid(repo, target):
                        out["identical"] += 1
    out["picks"] = len(ms)
    return {
        "counts": dict(out),
        "levers": dict(levers),
        "ms_per_pick": sum(ms) / len(ms) if ms else 0.0,
    }


# ------------------------------------------------------------------------------- systemd


def run_systemd(repo_path: Path, branches: list[str], work: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    all_stable = sorted(
        (b for b in repo.branches.local if re.fullmatch(r"v\d+-stable", b)),
        key=lambda b: int(b[1:-7]),
    )
    for branch in branches:
        n = int(branch[1:-7])
        base = f"v{n}"
        base_sha = str(repo.revparse_single(base).peel(pygit2.Commit).id)
        tip = str(repo.branches.local[branch].target)
        real: dict[str, str] = {}
        originals: list[str] = []
        for c in repo.walk(pygit2.Oid(hex=tip)):
            if str(c.id) == base_sha or repo.descendant_of(pygit2.Oid(hex=base_sha), c.id):
                break
            info = parse_message(c.message)
            if info.cherry_picked_from:
                originals.append(info.cherry_picked_from[0])
                for s in info.cherry_picked_from:
                    real.setdefault(s, str(c.id))
        newer = [b for b in all_stable if int(b[1:-7]) > n][:4]
        sources = ["main", *newer]
        upstream = work / f"up-{n}.git"
        fork = work / f"fork-{n}.git"
        refs = {f"refs/heads/{b}": str(repo.branches.local[b].target) for b in sources}
        refs.update({f"refs/tags/{base}": str(repo.references[f"refs/tags/{base}"].target)})
        fork_refs = {f"refs/heads/{branch}": base_sha}
        commits = "\n".join(f"      - {s}" for s in dict.fromkeys(originals))
        policy = load_policy_text(f"""\
project: systemd-{n}
upstream: {{git: {upstream}, main: main}}
fork: {{git: {fork}}}
series:
  - name: "{n}"
    base: {base}
    branch: {branch}
    sources: {sources}
    since: 2000-01-01
flags:
  - name: real-backports
    commits:
{commits}
""")
        state = work / f"state-{n}"
        engine = Workspace(policy, state)
        t = time.perf_counter()
        prepare_cache(engine, repo_path, refs, fork_refs)
        t_fetch = time.perf_counter() - t
        t = time.perf_counter()
        plan = engine.plan()
        t_plan = time.perf_counter() - t
        res = summarize(engine.cache.repo, plan, real)
        engine.close()
        c = res["counts"]
        named = len(set(originals))
        print(
            f"{branch}: {len(set(real.values()))} real backports naming {named} originals; "
            f"sources {', '.join(sources)}"
        )
        print(
            f"  flagged {c.get('flagged', 0)} (the rest have no commit in this repository "
            f"to pick from); clean {c.get('new-clean', 0)}, empty {c.get('new-empty', 0)}, "
            f"conflict {c.get('new-conflict', 0)}, error {c.get('new-error', 0)}"
        )
        print(
            f"  identical to the real backport (patch-id): {c.get('identical', 0)} of "
            f"{c.get('compared', 0)} clean picks compared; picked from sibling branches: "
            f"{c.get('source:other', 0) + c.get('source:sibling-backport', 0)}"
        )
        print(
            f"  levers {res['levers']}; {res['ms_per_pick']:.1f} ms per pick attempt; "
            f"cache {t_fetch:.1f}s, plan {t_plan:.1f}s"
        )


# ------------------------------------------------------------------------------- cpython


def shipped_security(repo: pygit2.Repository, tag: str, releases: list[str]) -> set[str]:
    """Issue ids (gh-N, bpo-N) in the Security sections of the given releases' changelogs."""
    out: set[str] = set()
    for rel in releases:
        try:
            blob = repo.revparse_single(f"{tag}:Misc/NEWS.d/{rel}.rst")
        except KeyError:
            continue
        text = bytes(blob.data).decode()  # type: ignore[attr-defined]
        for entry in text.split("\n..\n"):
            if ".. section: Security" in entry:
                m = re.search(r"\.\. (gh-issue|bpo): (\d+)", entry)
                if m:
                    out.add(f"{'gh' if m.group(1) == 'gh-issue' else 'bpo'}-{m.group(2)}")
    return out


def run_cpython(repo_path: Path, work: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    lines = [
        ("3.10.8", "3.10", "v3.10.10", ["3.10.9", "3.10.10"]),
        ("3.11.0", "3.11", "v3.11.2", ["3.11.1", "3.11.2"]),
    ]
    base_policy = load_policy(ROOT / "policies" / "cpython.yaml")
    for name, branch, until, releases in lines:
        until_c = repo.revparse_single(until).peel(pygit2.Commit)
        cutoff = until_c.commit_time
        main_at = next(
            c for c in repo.walk(repo.branches.local["main"].target) if c.commit_time <= cutoff
        )
        refs = {
            "refs/heads/main": str(main_at.id),
            f"refs/heads/{branch}": str(until_c.id),
            f"refs/tags/v{name}": str(repo.references[f"refs/tags/v{name}"].target),
        }
        upstream = work / f"cpy-{name}.git"
        fork = work / f"cpy-fork-{name}.git"
        base_sha = str(repo.revparse_single(f"v{name}").peel(pygit2.Commit).id)
        fork_refs = {f"refs/heads/{name}-stable": base_sha}
        policy = base_policy.model_copy(
            update={
                "upstream": base_policy.upstream.model_copy(update={"git": str(upstream)}),
                "fork": base_policy.fork.model_copy(update={"git": str(fork)}),
                "forge": base_policy.forge.model_copy(update={"kind": "local"}),
                "series": [
                    s
                    for s in load_policy_text(f"""\
project: x
upstream: {{git: x}}
fork: {{git: x}}
series: [{{name: "{name}", base: v{name}, sources: ["{branch}", main]}}]
flags: [{{name: x, message: x}}]
""").series
                ],
            }
        )
        engine = Workspace(policy, work / f"state-cpy-{name}")
        t = time.perf_counter()
        prepare_cache(engine, repo_path, refs, fork_refs)
        t_fetch = time.perf_counter() - t
        t = time.perf_counter()
        plan = engine.plan()
        t_plan = time.perf_counter() - t
        # The backports CPython shipped in those releases, by fix.
        real: dict[str, str] = {}
        shipped_commits = git(repo_path, "rev-list", f"v{name}..{until}").split()
        for sha in shipped_commits:
            info = parse_message(repo[sha].peel(pygit2.Commit).message)
            for s in info.cherry_picked_from:
                real.setdefault(s, sha)
            real.setdefault(sha, sha)
        res = summarize(engine.cache.repo, plan, real)
        sp = plan.series[0]
        flagged_issues = {i for pf in sp.fixes for i in pf.candidate.fix.issues}
        in_release = [pf for pf in sp.fixes if any(m in real for m in pf.candidate.fix.members)]
        shipped = shipped_security(repo, until, releases)
        found = shipped & flagged_issues
        missed = sorted(shipped - flagged_issues)
        by_rule: Counter[str] = Counter()
        for pf in sp.fixes:
            for r in {h.rule for h in pf.candidate.fix.flags}:
                by_rule[r] += 1
        c = res["counts"]
        print(
            f"{name}-stable (upstream as of {until}, "
            f"{dt.datetime.fromtimestamp(cutoff, dt.UTC):%Y-%m-%d}):"
        )
        print(
            f"  flagged {c.get('flagged', 0)} fixes ({dict(by_rule)}); "
            f"{len(in_release)} of them shipped in {', '.join(releases)}"
        )
        shown = ("in-base", "reverted", "applied")
        statuses = {k: v for k, v in c.items() if k.startswith("new-") or k in shown}
        print(f"  statuses: {statuses}")
        print(
            f"  release changelogs list {len(shipped)} security entries; flagged "
            f"{len(found)}; missed {len(missed)}: {', '.join(missed) or '-'}"
        )
        print(
            f"  picks identical to the shipped backport (patch-id): {c.get('identical', 0)} "
            f"of {c.get('compared', 0)} compared; {res['ms_per_pick']:.1f} ms per attempt; "
            f"cache {t_fetch:.1f}s, plan {t_plan:.1f}s"
        )
        extra = [
            pf
            for pf in sp.fixes
            if pf.status.startswith("new-") and not any(m in real for m in pf.candidate.fix.members)
        ]
        for pf in extra[:12]:
            print(f"    not in the release: {pf.status:13} {pf.candidate.fix.subject[:70]}")
        engine.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["systemd", "cpython"])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--branch", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stablectl-real-"))
    try:
        if args.kind == "systemd":
            run_systemd(
                args.repo, args.branch or ["v250-stable", "v251-stable", "v253-stable"], work
            )
        else:
            run_cpython(args.repo, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
