"""Selection recall on real data: the upstream commits Debian carries for python3.11.

    python bench/recall_debian.py DEBIAN_PATCHES_DIR [--advisories PATH_OR_URL]

DEBIAN_PATCHES_DIR is `debian/patches` of the `python3.11` source package (bookworm,
3.11.2-6+deb12u8: `apt-get source --download-only python3.11`, then untar the debian.tar.xz).
Its `git format-patch` exports (`From <sha>` lines) are the upstream `[3.11]` commits Debian
had to carry; each is read as the commit it exports and run through the flag rules of
policies/cpython.yaml (the advisory rule reads --advisories, e.g. a local clone of
psf/advisory-database). Label rules need the forge and are not counted here.
Nothing is downloaded; nothing of the package is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablectl.controller.advisories import AdvisoryIndex, load_advisories
from stablectl.controller.selection import evaluate_flags
from stablectl.gitops.patches import read_queue
from stablectl.gitops.scan import CommitFacts
from stablectl.policy import load_policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("patches", type=Path)
    ap.add_argument("--advisories", help="OSV database (dir or git) instead of the policy's")
    ap.add_argument(
        "--policy",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "policies" / "cpython.yaml",
    )
    args = ap.parse_args()
    policy = load_policy(args.policy)
    advisories: dict[str, AdvisoryIndex] = {}
    for r in policy.flags:
        if r.advisories is not None:
            advisories[r.name] = load_advisories(
                args.advisories or r.advisories, r.advisory_repo, Path("/tmp/stablectl-recall")
            )
    patches = [p for p in read_queue(args.patches) if p.upstream]
    found: dict[str, set[str]] = {r.name: set() for r in policy.flags}
    rows = []
    for p in patches:
        assert p.upstream is not None
        facts = CommitFacts(
            p.upstream,
            (),
            p.author_name,
            p.author_email,
            p.author_time,
            p.author_time,
            p.message,
            tuple(p.paths),
            False,
            None,
            frozenset(p.deleted),
        )
        hits = evaluate_flags(facts, policy.flags, advisories=advisories, labels=set())
        for h in hits:
            found[h.rule].add(p.upstream)
        rows.append((p.name, sorted({h.rule for h in hits})))
    n = len(patches)
    every = set().union(*found.values()) if found else set()
    print(f"{n} upstream commits exported as format-patches in {args.patches}")
    for name, shas in found.items():
        print(f"  {name:18s} {len(shas):3d} of {n}")
    print(f"  {'all rules':18s} {len(every):3d} of {n}")
    missed = [name for name, rules in rows if not rules]
    print(f"missed by every rule ({len(missed)}):")
    for m in missed:
        print(f"  {m}")


if __name__ == "__main__":
    main()
