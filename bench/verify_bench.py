"""What exact provenance costs, and what it says, on real stable branches.

    python bench/verify_bench.py /path/to/systemd-stable.git --branch v249-stable

For each vNNN-stable branch of systemd-stable (a mirror kept by people, every backport carrying
`(cherry picked from commit X)`), the commits after tag vNNN are audited the way `stablectl
verify` audits a mirror: `gitops.provenance` re-picks each named upstream commit onto the
commit's own parent (in memory, the engine's picker) and compares trees exactly. Printed: how
many are verbatim, adapted (with the size of their interdiffs) or name nothing upstream has, and
the time per commit against a baseline run in the same process: git's own merge of the same
pick (`git merge-tree --write-tree`, one process per commit) plus `git diff-tree` of its
result against the commit.

Nothing here is a test: the repository is public and large, fetched by hand, never committed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_history import shared_clone

from stablectl.gitops.cache import UPSTREAM_TAGS
from stablectl.gitops.messages import parse_message
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Provenance


def git_baseline(git_dir: Path, c: pygit2.Commit, source: str) -> bool:
    """git's own answer to the same question: merge-tree the pick, diff its tree with c's."""
    repo_args = ["git", "--git-dir", str(git_dir)]
    parent = str(c.parents[0].id)
    synthetic = subprocess.run(
        [
            *repo_args,
            "commit-tree",
            f"{parent}^{{tree}}",
            "-p",
            f"{source}^",
            "-m",
            "ours",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    proc = subprocess.run(
        [*repo_args, "merge-tree", "--write-tree", "--no-messages", synthetic, source],
        capture_output=True,
        text=True,
    )
    tree = proc.stdout.split("\n", 1)[0].strip()
    if proc.returncode not in (0, 1) or not tree:
        return False
    diff = subprocess.run(
        [*repo_args, "diff-tree", "-r", "--name-only", tree, str(c.tree.id)],
        capture_output=True,
        text=True,
    ).stdout
    return proc.returncode == 0 and not diff.strip()


def audit_branch(src: Path, branch: str, work: Path) -> None:
    repo = pygit2.Repository(str(src))
    n = int(branch[1:-7])
    base = repo.revparse_single(f"v{n}").peel(pygit2.Commit)
    tip = repo.branches.local[branch].target
    cache = work / f"cache-{n}.git"
    # Upstream as stablectl's cache holds it, fetched from upstream: main, the four newer
    # stable branches (systemd's maintainers pick from them too), and the base tag.
    newer = sorted(
        (b for b in repo.branches.local if b.endswith("-stable") and b[1:-7].isdigit()),
        key=lambda b: int(b[1:-7]),
    )
    sources = ["main", *[b for b in newer if int(b[1:-7]) > n][:4]]
    refs = {f"refs/remotes/upstream/{b}": str(repo.branches.local[b].target) for b in sources}
    refs[f"{UPSTREAM_TAGS}v{n}"] = str(repo.references[f"refs/tags/v{n}"].target)
    shared_clone(src, cache, refs)
    crepo = pygit2.Repository(str(cache))
    prov = Provenance(crepo, (), lambda: Picker(crepo, Committer("v", "v@example.invalid")))
    walker = crepo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    walker.hide(base.id)
    counts: Counter[str] = Counter()
    sizes: list[int] = []
    ours: list[float] = []
    theirs: list[float] = []
    agree = 0
    for c in walker:
        counts["commits"] += 1
        if len(c.parents) != 1:
            counts["merge"] += 1
            continue
        named = parse_message(c.message).cherry_picked_from
        if not named:
            counts["no trailer"] += 1
            continue
        t = time.perf_counter()
        r = prov.explain(str(c.id))
        ours.append(time.perf_counter() - t)
        if r.source is None:
            counts["names nothing upstream has"] += 1
            continue
        if r.verbatim:
            counts["verbatim"] += 1
        else:
            counts[f"adapted ({r.repick})"] += 1
            sizes.append(r.change.lines)
        t = time.perf_counter()
        same = git_baseline(cache, c, r.source)
        theirs.append(time.perf_counter() - t)
        agree += same == r.verbatim
    audited = len(ours)
    print(
        f"{branch}: {counts['commits']} commits after v{n}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "commits")
    )
    if sizes:
        print(
            f"  adapted interdiffs: median {statistics.median(sizes):.0f} lines, max {max(sizes)}"
        )
    if ours and theirs:
        print(
            f"  stablectl {1000 * sum(ours) / audited:.1f} ms per commit "
            f"({sum(ours):.1f} s for {audited}); git merge-tree + diff-tree "
            f"{1000 * sum(theirs) / len(theirs):.1f} ms per commit; ratio "
            f"{(sum(ours) / audited) / (sum(theirs) / len(theirs)):.2f}x; "
            f"verdicts agree with git's on {agree} of {len(theirs)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="systemd-stable (github:systemd/systemd-stable)")
    ap.add_argument("--branch", action="append", required=True)
    args = ap.parse_args()
    pygit2.settings.enable_strict_object_creation(False)
    with tempfile.TemporaryDirectory(prefix="stablectl-verify-bench-") as tmp:
        for b in args.branch:
            audit_branch(args.repo.resolve(), b, Path(tmp))


if __name__ == "__main__":
    main()
