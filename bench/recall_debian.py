"""Selection recall on real data: the upstream commits Debian carries for python3.11.

    python bench/recall_debian.py DEBIAN_PATCHES_DIR [--advisories PATH_OR_URL]
                                  [--issues bench/data/cpython-issues.json]

DEBIAN_PATCHES_DIR is `debian/patches` of the `python3.11` source package (bookworm,
3.11.2-6+deb12u8: `apt-get source --download-only python3.11`, then untar the debian.tar.xz).
Its patches that name an upstream commit (`git format-patch` exports, `From <sha>`; DEP-3
`Origin:` with a full SHA) are the upstream commits Debian had to carry; each is read as the
commit it exports and run through the flag rules of policies/cpython.yaml. The advisory rule
reads --advisories (e.g. a local clone of psf/advisory-database). Rules that need the forge
are evaluated against what is known offline: label rules (upstream PR labels) count nothing,
issue rules read --issues, a JSON file of the current titles and labels of upstream issues
(default: bench/data/cpython-issues.json; issues not in it count as not matching).
Nothing is downloaded; nothing of the package is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablectl.controller.advisories import AdvisoryIndex, load_advisories
from stablectl.controller.selection import evaluate_flags, gh_issues
from stablectl.controller.selection.followups import names_of
from stablectl.forge.base import UpstreamIssue, search_matches
from stablectl.gitops.messages import references
from stablectl.gitops.patches import read_queue
from stablectl.gitops.scan import CommitFacts
from stablectl.policy import IssuesRule, load_policy

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("patches", type=Path)
    ap.add_argument("--advisories", help="OSV database (dir or git) instead of the policy's")
    ap.add_argument("--issues", type=Path, default=HERE / "data" / "cpython-issues.json")
    ap.add_argument("--policy", type=Path, default=HERE.parent / "policies" / "cpython.yaml")
    args = ap.parse_args()
    policy = load_policy(args.policy)
    advisories: dict[str, AdvisoryIndex] = {}
    for r in policy.flags:
        if r.advisories is not None:
            advisories[r.name] = load_advisories(
                args.advisories or r.advisories, r.advisory_repo, Path("/tmp/stablectl-recall")
            )
    known = {
        int(i["number"]): UpstreamIssue(
            int(i["number"]), i["title"], tuple(i["labels"]), i.get("state", "open")
        )
        for i in json.loads(args.issues.read_text())["issues"]
    }

    def issues(rule: IssuesRule) -> Mapping[int, UpstreamIssue]:
        """What the forge's searches would answer, over the issues known here."""
        return {
            n: i
            for n, i in known.items()
            if any(search_matches(q, i.title, i.labels) for q in rule.queries())
        }

    patches = [p for p in read_queue(args.patches) if p.upstream]
    found: dict[str, set[str]] = {r.name: set() for r in policy.flags}
    adv_kind: dict[str, set[str]] = {"fixed commit": set(), "issue or PR reference": set()}
    rows = []
    exported = 0
    for p in patches:
        assert p.upstream is not None
        exported += p.exported
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
        hits = evaluate_flags(
            facts, policy.flags, advisories=advisories, labels=set(), issues=issues
        )
        for h in hits:
            found[h.rule].add(p.upstream)
            if h.rule in advisories:
                kind = "fixed commit" if "fixed" in h.reason else "issue or PR reference"
                adv_kind[kind].add(p.upstream)
        looked_up = [n for n in gh_issues(facts) if n in known]
        rows.append((p.name, sorted({h.rule for h in hits}), facts, looked_up))
    n = len(patches)
    every = set().union(*found.values()) if found else set()
    commit_side = {
        sha for r in policy.flags if not r.needs_forge for sha in found.get(r.name, set())
    }
    print(
        f"{n} upstream commits in {args.patches} "
        f"({exported} `git format-patch` exports, {n - exported} DEP-3 Origin)"
    )
    for name, shas in found.items():
        rule = next(r for r in policy.flags if r.name == name)
        note = " (upstream PR labels: not known offline)" if rule.labels is not None else ""
        note = " (issues from --issues)" if rule.issues is not None else note
        print(f"  {name:22s} {len(shas):3d} of {n}{note}")
        if name in advisories:
            for kind, shas_k in adv_kind.items():
                print(f"    {'by ' + kind:20s} {len(shas_k):3d}")
    print(f"  {'commit-side rules':22s} {len(commit_side):3d} of {n}")
    print(f"  {'all rules':22s} {len(every):3d} of {n}")
    added = sorted(every - commit_side)
    if added:
        print(f"added by issue rules ({len(added)}):")
        for name, rules, facts, _ in rows:
            if facts.sha in added:
                print(f"  {name}: {', '.join(rules)}")
    # Follow-ups (policy follow_ups): a patch no rule flags that names, in its message, the
    # commit, PR or issue of an earlier flagged one. The queue stands in for upstream here, so
    # this measures recall only (docs/engine.md, Follow-ups, measures the rule on history).
    followed = follow_ups_in_queue(rows, every, policy.follow_ups.by)
    for name, parent, token in followed:
        print(f"  follow-up: {name} follows {parent} (names {token})")
    done = every | {facts.sha for name, _, facts, _ in rows if name in {f[0] for f in followed}}
    print(f"  {'all rules + follow-up':22s} {len(done):3d} of {n}")
    missed = [(name, facts, lk) for name, rules, facts, lk in rows if facts.sha not in done]
    print(f"missed by every rule ({len(missed)}):")
    for name, facts, lk in missed:
        issues_named = ", ".join(f"gh-{i}" for i in gh_issues(facts)) or "no gh issue"
        status = "issue looked up" if lk else "issue not looked up"
        print(f"  {name} ({issues_named}; {status})")


Row = tuple[str, list[str], CommitFacts, list[int]]


def follow_ups_in_queue(
    rows: list[Row], flagged: set[str], by: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(patch, the flagged patch it follows, the token it names) for unflagged patches naming
    an earlier flagged patch's commit, PR or issue; two levels, as the selector does."""
    out: list[tuple[str, str, str]] = []
    parents = [r for r in rows if r[2].sha in flagged]
    for level in range(2):
        kinds = set(by) if level == 0 else set(by) & {"commit", "pr"}
        new = []
        for name, _, facts, _ in rows:
            if facts.sha in flagged or any(o[0] == name for o in out):
                continue
            refs = set(references(facts.message))
            for pname, _, pf, _ in parents:
                if pf.author_time > facts.author_time:
                    continue
                shas = {pf.sha, *pf.info.cherry_picked_from}
                issues, prs = names_of([pf])  # as the selector's FollowUpFinder
                tokens = set()
                if "issue" in kinds:
                    tokens |= set(issues)
                if "pr" in kinds:
                    tokens |= set(prs)
                hit = next((t for t in sorted(refs) if t in tokens), None)
                if hit is None and "commit" in kinds:
                    hit = next(
                        (
                            t
                            for t in refs
                            if t.startswith("c-") and any(s.startswith(t[2:]) for s in shas)
                        ),
                        None,
                    )
                if hit is not None:
                    new.append((name, pname, hit))
                    break
        if not new:
            break
        out += new
        parents = [r for r in rows if r[0] in {n[0] for n in new}]
    return out


if __name__ == "__main__":
    main()
