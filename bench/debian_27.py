"""A 2.7.18 line against Debian's CVE backports after 2.7's end of life.

    python bench/debian_27.py /path/to/cpython.git DEBIAN_PATCHES_DIR

DEBIAN_PATCHES_DIR is `debian/patches` of python2.7 2.7.18-8+deb11u1 (bullseye; `apt-get source
--download-only python2.7=2.7.18-8+deb11u1` with a deb-src entry, its patches extracted from the
.diff.gz). Its `CVE-*.diff` patches are the upstream fixes Debian carried by hand; each names
its upstream commit (`From <sha>`, "Backport of <sha>", a cherry-pick trailer) and issue.

The line is `policies/cpython.yaml`'s 2.7.18 series (upstream_end: 3.6, 3.7, 3.8, main; 2.7's
renames mapped; its build profile) with the commit-side flag rules, planned over the
repository's history with the stable branch at the tag. For each Debian patch: is its fix
selected, what the engine concluded, and for a clean pick whether the code it changes equals
Debian's (git patch-id --stable over the code files: NEWS and docs aside). Then what the engine
would open a PR for that Debian did not carry, grouped. The history ends where the repository
does (MIPS/cpython: March 2023), so later fixes cannot be found. Nothing here is a test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eol_lines import line_policy, refs_of
from real_history import prepare_cache

from stablectl.controller.plan import PlannedFix
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace

SHA = re.compile(r"\b[0-9a-f]{40}\b")
ISSUE = re.compile(r"\b(bpo|gh)-(\d+)\b|\bissue ?(\d{4,6})\b", re.I)


def patch_id(text: str) -> str | None:
    out = subprocess.run(
        ["git", "patch-id", "--stable"], input=text, capture_output=True, text=True, check=False
    ).stdout.split()
    return out[0] if out else None


def code_only(diff_text: str, is_code: object) -> str:
    """The file sections of a unified diff whose path is code."""
    keep: list[str] = []
    on = False
    for line in diff_text.splitlines(keepends=True):
        if line.startswith("diff --git "):
            path = line.split(" b/", 1)[-1].strip()
            on = bool(is_code(path))  # type: ignore[operator]
        if on:
            keep.append(line)
    return "".join(keep)


def debian_patches(d: Path) -> dict[str, tuple[set[str], set[str], str]]:
    """CVE → (upstream SHAs named, issues named, the patch text)."""
    out = {}
    for p in sorted(d.glob("CVE-*.diff")):
        text = p.read_text(errors="replace")
        head = text.split("\ndiff ", 1)[0]
        shas = set(SHA.findall(head))
        issues = {
            f"{(m.group(1) or 'bpo').lower()}-{m.group(2) or m.group(3)}"
            for m in ISSUE.finditer(head)
        }
        out[p.stem] = (shas, issues, text)
    return out


def pick_diff(repo: pygit2.Repository, pf: PlannedFix) -> str:
    assert pf.chosen is not None and pf.chosen.result.commit is not None
    c = repo[pf.chosen.result.commit].peel(pygit2.Commit)
    return str(repo.diff(c.parents[0], c).patch or "")


def main() -> None:
    repo_path, patches_dir = Path(sys.argv[1]), Path(sys.argv[2])
    work = Path(tempfile.mkdtemp(prefix="stablectl-deb27-"))
    try:
        policy = line_policy("2.7.18", work)
        s = policy.series[0]
        refs, base = refs_of(pygit2.Repository(str(repo_path)), s)
        engine = Workspace(policy, work / "state")
        prepare_cache(engine, repo_path, refs, {f"refs/heads/{s.stable_branch}": base})
        plan = engine.plan()
        repo = engine.cache.repo
        sp = plan.series[0]
        is_code = policy.applicability.is_code
        debian = debian_patches(patches_dir)
        matched: set[str] = set()
        print(
            f"2.7.18-stable, searched {', '.join(sp.selection.searched)}: {len(sp.fixes)} flagged"
        )
        counts: dict[str, int] = defaultdict(int)
        for cve, (shas, issues, text) in debian.items():
            found = [
                pf
                for pf in sp.fixes
                if any(
                    m.startswith(x) or x.startswith(m)
                    for m in pf.candidate.fix.members
                    for x in shas
                )
                or issues & set(pf.candidate.fix.issues)
            ]
            if not found:
                in_repo = [x for x in shas if x in repo]
                why = "its upstream commit is in the history" if in_repo else "not in the history"
                print(f"  {cve:16} not selected ({', '.join(sorted(issues)) or 'no issue'}; {why})")
                counts["not selected"] += 1
                continue
            for pf in found:
                matched.add(pf.candidate.fix.key)
                same = ""
                if pf.applies and pf.chosen is not None and pf.chosen.result.commit:
                    ours = patch_id(code_only(pick_diff(repo, pf), is_code))
                    theirs = patch_id(code_only(text, is_code))
                    same = (
                        "identical to Debian's"
                        if ours and ours == theirs
                        else "differs from Debian's"
                    )
                    counts[same] += 1
                detail = pf.not_applicable or pf.applied or pf.waits_for or pf.note
                subject = pf.candidate.fix.subject[:50]
                print(f"  {cve:16} {pf.status:28} {subject:50} {same} {detail[:70]}")
            counts["selected"] += 1
        print(f"  Debian CVE patches: {len(debian)}; {dict(counts)}")
        extra: dict[str, list[str]] = defaultdict(list)
        for pf in sp.fixes:
            fix = pf.candidate.fix
            if fix.key in matched or not fix.security:
                continue
            if pf.status in (FixState.NEW_CLEAN, FixState.NEW_CLEAN_PREREQ, FixState.NEW_CONFLICT):
                extra[str(pf.status)].append(f"{fix.subject[:70]} {' '.join(fix.cves)}")
        print("  What the engine would PR that Debian did not carry:")
        for status, subjects in sorted(extra.items()):
            print(f"    {status}: {len(subjects)}")
            for x in subjects:
                print(f"      {x}")
        print(f"  plan stats: { {k: v for k, v in plan.stats.items() if k.startswith('seconds')} }")
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
