"""Replay real stable-branch history: what stablectl would have done with each real backport.

    python bench/replay.py REPO --branch v250-stable [--branch v251-stable ...]
    python bench/replay.py REPO --branch 3.10:v3.10.0:v3.10.10 --branch 3.11:v3.11.0:v3.11.2 \\
        [--security-only]
    python bench/replay.py --table RESULT.json ...     # markdown rows for docs/replay.md

REPO is a bare clone (`systemd/systemd-stable`, or `MIPS/cpython` for CPython's history to
March 2023); nothing of it is written to: the picks go to a scratch repository that borrows
its objects. A branch is `NAME[:BASE[:END]]`: systemd's `vNNN-stable` defaults to base tag
`vNNN` and the branch tip; CPython's `3.x` needs its base and end tags.

For every **backport** on the branch after its base (a commit with `(cherry picked from commit
X)`), stablectl's engine is asked, as if a flag rule named exactly the commits the maintainers
named, to produce it:

- **sources**, as `docs/engine.md` orders them, but only what existed when the real backport
  was committed (to be fair): backports of the same fix on *newer* sibling branches (nearest
  first), then the named commit itself (`main`'s original), then older siblings;
- **pick** with the Picker's levers (paths, libgit2, ort), first clean source wins;
- **compare** with the real commit: identical patch-id, or a difference classified as
  `scope` (other files), `whitespace` or `content` (an adaptation); conflicts are classified by
  their kinds (content, modify/delete, add/add, rename/…); `rescued` when the original
  conflicts and a sibling's backport picks.

Independent mode picks each backport onto the real parent. **Chained mode** starts at the
base and applies stablectl's picks in order onto its own results (commits without a trailer,
the maintainers' own, are applied as they are; a backport stablectl cannot pick is resolved "as
the maintainers did": the real commit picked onto the chain); at each release tag on the
branch the chain's tree is compared with the tag's: how far an automatic pipeline would have
drifted. `--levers` compares libgit2's merge alone with git's ort merge as a fallback.

`--prerequisites N` (issue 16): on each independent conflict, the engine's prerequisite search
(`controller/prerequisites.py`, at most N commits, blame over BASE..SOURCE^) is run for each
source in order: a backport it makes clean is "rescued by prerequisites"; the result is
compared with what the maintainers shipped (the real commit's tree), and each prerequisite is
looked up on the branch (did the maintainers backport it themselves, before or after?).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablectl.controller.prerequisites import PrerequisiteFinder
from stablectl.gitops.diffs import commit_patch_id
from stablectl.gitops.messages import parse_message
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.pick_result import PickResult
from stablectl.gitops.scan import CommitIndex
from stablectl.gitops.trees import update_tree

COMMITTER = Committer("stablectl replay", "replay@stablectl.invalid")


@dataclass
class Backport:
    sha: str
    parent: str
    time: int
    named: list[str]  # the commits its trailers name (oldest pick first)
    security: bool


@dataclass
class Replay:
    branch: str
    counts: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    conflict_kinds: Counter[str] = field(default_factory=Counter)
    levers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    chain_events: list[str] = field(default_factory=list)  # commits the chain could not take
    variants: Counter[str] = field(default_factory=Counter)  # --merge-options
    different: list[dict[str, str]] = field(default_factory=list)  # clean, not identical
    releases: list[dict[str, Any]] = field(default_factory=list)
    rescues: list[dict[str, Any]] = field(default_factory=list)  # --prerequisites
    pick_seconds: float = 0.0
    pick_attempts: int = 0
    wall: float = 0.0


def version(branch: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", branch))


def scratch(src: Path, dst: Path) -> pygit2.Repository:
    """A bare repository borrowing src's objects: picks write here, never into src."""
    subprocess.run(["git", "init", "-q", "--bare", str(dst)], check=True)
    (dst / "objects" / "info" / "alternates").write_text(str(src / "objects") + "\n")
    return pygit2.Repository(str(dst))


def walk_range(repo: pygit2.Repository, tip: str, hide: str | None) -> list[pygit2.Commit]:
    """Commits of tip not in hide, oldest first (topological)."""
    walker = repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
    if hide:
        walker.hide(pygit2.Oid(hex=hide))
    return list(reversed(list(walker)))


def sibling_index(
    repo: pygit2.Repository, branches: dict[str, tuple[str, str | None]]
) -> dict[str, list[tuple[str, str, int]]]:
    """named sha -> [(backport sha, branch, commit time)] over the sibling branches."""
    idx: dict[str, list[tuple[str, str, int]]] = {}
    for name, (tip, hide) in branches.items():
        for c in walk_range(repo, tip, hide):
            for x in parse_message(c.message).cherry_picked_from:
                idx.setdefault(x, []).append((str(c.id), name, c.commit_time))
    return idx


def full(repo: pygit2.Repository, sha: str) -> str | None:
    try:
        return str(repo.revparse_single(sha).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def candidates(
    repo: pygit2.Repository,
    bp: Backport,
    own: str,
    siblings: dict[str, list[tuple[str, str, int]]],
) -> list[tuple[str, str]]:
    """(sha, where) in the engine's order, only what existed before the real backport."""
    named = [n for n in (full(repo, x) for x in bp.named) if n is not None]
    keys = set(bp.named) | set(named)
    found: dict[str, tuple[tuple[int, Any], str]] = {}
    for k in keys:
        for sha, branch, when in siblings.get(k, []):
            if branch == own or when >= bp.time or sha == bp.sha:
                continue
            v, mine = version(branch), version(own)
            rank = (0, v) if v > mine else (2, tuple(-x for x in v))
            found.setdefault(sha, (rank, f"backport on {branch}"))
    for n in named:
        found.setdefault(n, ((1, ()), "named commit"))
    return [(sha, where) for sha, (_, where) in sorted(found.items(), key=lambda kv: kv[1][0])]


def same_change(repo: pygit2.Repository, real: pygit2.Commit, ours: str) -> bool:
    """Onto the same parent, the same tree is the same change (no blob read); otherwise
    compare patch-ids (which ignore what a diff does not show)."""
    mine = repo[ours].peel(pygit2.Commit)
    if mine.tree_id == real.tree_id:
        return True
    try:
        return commit_patch_id(repo, real) == commit_patch_id(repo, mine)
    except (KeyError, pygit2.GitError):
        return False  # a blob the partial clone lacks: not comparable, counted as different


def changed_paths(repo: pygit2.Repository, a: str, b: str) -> set[str]:
    diff = repo.diff(repo[a].peel(pygit2.Tree), repo[b].peel(pygit2.Tree))
    return {p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)}


def classify(repo: pygit2.Repository, parent: str, real_tree: str, ours_tree: str) -> str:
    if changed_paths(repo, parent, real_tree) != changed_paths(repo, parent, ours_tree):
        return "scope"
    diff = repo.diff(
        repo[real_tree].peel(pygit2.Tree),
        repo[ours_tree].peel(pygit2.Tree),
        flags=pygit2.enums.DiffOption.IGNORE_WHITESPACE,
    )
    hunks = sum(len(p.hunks) for p in diff if p is not None)
    return "whitespace" if hunks == 0 else "content"


def tree_drift(repo: pygit2.Repository, a_tree: str, b_tree: str) -> tuple[int, int | None]:
    """(files, changed lines) between two trees; lines are None when a blob is missing (the
    public mirrors are partial clones)."""
    diff = repo.diff(repo[a_tree].peel(pygit2.Tree), repo[b_tree].peel(pygit2.Tree))
    files = sum(1 for _ in diff.deltas)
    try:
        st = diff.stats
    except (KeyError, pygit2.GitError):
        return files, None
    return files, st.insertions + st.deletions


def graft(repo: pygit2.Repository, chain: str, real: pygit2.Commit) -> str:
    """The real commit's change, as the maintainers resolved it, laid onto the chain: every
    path it changed takes the real commit's entry (no blob is read: the public mirrors are
    partial clones)."""
    parent = real.parents[0]
    changes: dict[str, tuple[pygit2.Oid, int] | None] = {}
    for d in repo.diff(parent.tree, real.tree).deltas:
        if d.status_char() == "D":
            changes[d.old_file.path] = None
        else:
            if d.old_file.path != d.new_file.path:
                changes[d.old_file.path] = None
            changes[d.new_file.path] = (d.new_file.id, int(d.new_file.mode))
    base = repo[chain].peel(pygit2.Commit)
    tree = update_tree(repo, base.tree, changes)
    sig = pygit2.Signature(COMMITTER.name, COMMITTER.email, real.commit_time, 0)
    return str(repo.create_commit(None, real.author, sig, real.message, tree, [base.id]))


VARIANTS: dict[str, tuple[int, int]] = {
    # name: (merge flags, file flags) for libgit2's merge_trees
    "libgit2 default": (int(pygit2.enums.MergeFlag.FIND_RENAMES), 0),
    "libgit2 patience": (
        int(pygit2.enums.MergeFlag.FIND_RENAMES),
        int(pygit2.enums.MergeFileFlag.DIFF_PATIENCE),
    ),
    "libgit2 minimal": (
        int(pygit2.enums.MergeFlag.FIND_RENAMES),
        int(pygit2.enums.MergeFileFlag.DIFF_MINIMAL),
    ),
    "libgit2 ignore-space-change": (
        int(pygit2.enums.MergeFlag.FIND_RENAMES),
        int(pygit2.enums.MergeFileFlag.IGNORE_WHITESPACE_CHANGE),
    ),
}


def try_variants(
    repo: pygit2.Repository,
    picker: Picker,
    cands: list[tuple[str, str]],
    parent: str,
    real_tree: str,
    rep: Replay,
) -> None:
    """On a backport every source of which conflicts with the Picker's levers: would another
    merge have picked it cleanly, and to exactly the tree the maintainers committed?"""
    onto = repo[parent].peel(pygit2.Commit)
    for name, (flags, file_flags) in VARIANTS.items():
        for sha, _ in cands:
            src = repo[sha].peel(pygit2.Commit)
            try:
                index = repo.merge_trees(
                    src.parents[0].tree, onto.tree, src.tree, flags=flags, file_flags=file_flags
                )
                tree = str(index.write_tree(repo)) if index.conflicts is None else None
            except (pygit2.GitError, KeyError, RuntimeError):
                continue  # a blob a partial clone lacks
            if tree is not None:
                rep.variants[f"{name}: clean"] += 1
                rep.variants[f"{name}: identical"] += int(tree == real_tree)
                break
    # git's ort merge (histogram diff, renames) is the Picker's third lever already: count
    # it alone, as a reference.
    for sha, _ in cands:
        r = picker._pick_ort(repo[sha].peel(pygit2.Commit), onto)
        if r.outcome in ("clean", "empty"):
            rep.variants["ort: clean"] += 1
            rep.variants["ort: identical"] += int(r.tree == real_tree)
            break


def first_clean(
    picker: Picker, cands: list[tuple[str, str]], onto: str, rep: Replay
) -> tuple[PickResult | None, str, list[PickResult]]:
    tried: list[PickResult] = []
    for sha, where in cands:
        r = picker.pick(sha, onto, record_origin=True)
        rep.pick_seconds += r.seconds
        rep.pick_attempts += 1
        tried.append(r)
        if r.outcome == "error":
            rep.errors.append(f"{sha[:12]} onto {onto[:12]}: {r.error}")
        if r.ok:
            return r, where, tried
    return None, "", tried


def replay_branch(
    src: Path,
    repo: pygit2.Repository,
    spec: str,
    sibling_specs: dict[str, tuple[str, str | None]],
    *,
    security_only: bool,
    compare_levers: bool,
    merge_options: bool = False,
    path_map: dict[str, str] | None = None,
    prerequisites: int = 0,
    vetted_only: bool = True,
) -> Replay:
    parts = spec.split(":")
    name = parts[0]
    base = parts[1] if len(parts) > 1 else f"v{version(name)[0]}"
    end = parts[2] if len(parts) > 2 else None
    base_sha = full(repo, base)
    tip = full(repo, end) if end else full(repo, f"refs/heads/{name}")
    if base_sha is None or tip is None:
        raise SystemExit(f"{spec}: no base {base!r} or end {end or name!r} in {src}")
    rep = Replay(name)
    t_all = time.perf_counter()
    commits = [c for c in walk_range(repo, tip, base_sha) if len(c.parents) == 1]
    siblings = sibling_index(repo, {k: v for k, v in sibling_specs.items()})
    picker = Picker(repo, COMMITTER, path_map=path_map)
    plain = Picker(repo, COMMITTER, levers=("paths", "libgit2"), path_map=path_map)

    def unvetted(sha: str) -> str:
        """As `prerequisites.vetted_only`: a candidate some stable branch took a backport of."""
        if not vetted_only or sha in siblings:
            return ""
        if parse_message(repo[sha].peel(pygit2.Commit).message).cherry_picked_from:
            return ""  # a backport itself: on a stable branch
        return "was backported to no stable branch"

    finder = PrerequisiteFinder(
        repo, CommitIndex(repo, None), picker, max_commits=prerequisites, unusable=unvetted
    )
    # What the maintainers backported on this stretch, by the upstream commit named (and when).
    named_on_branch = {
        n: str(c.id) for c in commits for n in parse_message(c.message).cherry_picked_from
    }
    # Release tags on this stretch of the branch, by the commit they point at.
    on_branch = {str(c.id) for c in commits}
    tags: dict[str, list[str]] = {}
    for ref in repo.references:
        if ref.startswith("refs/tags/"):
            target = full(repo, ref)
            if target in on_branch:
                tags.setdefault(target, []).append(ref[10:])
    chain = base_sha
    for c in commits:
        sha = str(c.id)
        info = parse_message(c.message)
        paths = changed_paths(repo, str(c.parents[0].id), sha)
        security = any(fnmatch.fnmatch(p, "Misc/NEWS.d/next/Security/*") for p in paths)
        if info.cherry_picked_from and (security or not security_only):
            bp = Backport(
                sha, str(c.parents[0].id), c.commit_time, list(info.cherry_picked_from), security
            )
            rep.counts["backports"] += 1
            cands = candidates(repo, bp, name, siblings)
            if not cands:
                rep.counts["no source in the repository"] += 1
            else:
                # Independent: onto the real parent.
                won, where, tried = first_clean(picker, cands, bp.parent, rep)
                if won is None:
                    rep.counts["conflict"] += 1
                    for r in tried:
                        for cf in r.conflicts:
                            rep.conflict_kinds[cf.kind] += 1
                    if merge_options:
                        try_variants(repo, picker, cands, bp.parent, str(c.tree_id), rep)
                    if prerequisites:
                        rescue(finder, repo, c, bp, cands, tried, base_sha, named_on_branch, rep)
                else:
                    rep.counts[won.outcome] += 1
                    rep.levers[str(won.lever)] += 1
                    if where != "named commit":
                        rep.counts["from a sibling backport"] += 1
                        named = [s for s, w in cands if w == "named commit"]
                        if not named or not picker.pick(named[0], bp.parent).ok:
                            rep.counts["rescued by a sibling"] += 1
                    if won.outcome == "clean" and won.commit is not None:
                        if same_change(repo, c, won.commit):
                            rep.counts["identical"] += 1
                        else:
                            assert won.tree is not None
                            try:
                                cls = classify(repo, bp.parent, str(c.tree_id), won.tree)
                            except (KeyError, pygit2.GitError):
                                cls = "unreadable (partial clone)"
                            rep.classes[cls] += 1
                            rep.different.append(
                                {
                                    "backport": sha,
                                    "picked": won.source,
                                    "class": cls,
                                    "subject": c.message.splitlines()[0][:80],
                                }
                            )
                    if compare_levers and won.lever == "ort":
                        alone = [plain.pick(s, bp.parent) for s, _ in cands]
                        if not any(r.ok for r in alone):
                            rep.counts["conflict without ort"] += 1
                # Chained: onto stablectl's own result so far.
                cw, _, _ = first_clean(picker, cands, chain, rep)
                if cw is not None and cw.outcome == "clean" and cw.commit is not None:
                    chain = cw.commit
                elif cw is None:
                    rep.counts["chain: resolved as the maintainers did"] += 1
                    r = picker.pick(sha, chain)
                    if r.outcome == "clean" and r.commit is not None:
                        chain = r.commit
                    elif not r.ok:
                        rep.counts["chain: real commit grafted (does not pick either)"] += 1
                        rep.chain_events.append(f"{sha[:12]} {c.message.splitlines()[0][:60]}")
                        chain = graft(repo, chain, c)
        else:
            r = picker.pick(sha, chain, record_origin=False)
            if r.outcome == "clean" and r.commit is not None:
                chain = r.commit
            elif not r.ok:
                rep.counts["chain: maintainers' own commit grafted (does not pick)"] += 1
                rep.chain_events.append(
                    f"{sha[:12]} {c.message.splitlines()[0][:60]} ({r.outcome}: "
                    f"{r.error or ', '.join(cf.path for cf in r.conflicts[:3])})"
                )
                chain = graft(repo, chain, c)
        for tag in sorted(tags.get(sha, [])):
            chain_tree = str(repo[chain].peel(pygit2.Commit).tree_id)
            files, lines = tree_drift(repo, str(c.tree_id), chain_tree)
            rep.releases.append({"tag": tag, "files": files, "lines": lines})
    rep.wall = time.perf_counter() - t_all
    return rep


def rescue(
    finder: PrerequisiteFinder,
    repo: pygit2.Repository,
    real: pygit2.Commit,
    bp: Backport,
    cands: list[tuple[str, str]],
    tried: list[PickResult],
    base: str,
    named_on_branch: dict[str, str],
    rep: Replay,
) -> None:
    """A conflicting backport: would prerequisites have made a source clean, and is the result
    what the maintainers shipped?"""
    t = time.perf_counter()
    for (sha, where), r in zip(cands, tried, strict=False):
        full_sha = full(repo, sha) or sha
        search = finder.search(full_sha, bp.parent, base, r.conflicts, fix_key=full_sha)
        if not search.found or search.result is None:
            continue
        rep.counts["rescued by prerequisites"] += 1
        same = search.result.tree == str(real.tree_id)
        rep.counts["rescued: identical to the real backport"] += int(same)
        # The maintainers' own resolution plus the prerequisites: the same fix, brought by
        # its prerequisites instead of adapted by hand?
        onto = str(real.id)
        for p in search.prerequisites:
            r = finder.picker.pick(p.sha, onto)
            onto = r.commit if r.outcome == "clean" and r.commit else ""
            if not onto:
                break
        equivalent = (
            bool(onto) and str(repo[onto].peel(pygit2.Commit).tree_id) == search.result.tree
        )
        rep.counts["rescued: the real backport plus its prerequisites"] += int(
            equivalent and not same
        )
        on_branch = []
        for p in search.prerequisites:
            mine = named_on_branch.get(p.sha)
            when = "not backported by the maintainers"
            if mine is not None:
                later = repo.descendant_of(pygit2.Oid(hex=mine), real.id)
                when = "backported later" if later else "backported earlier"
                rep.counts[f"prerequisite {when}"] += 1
            else:
                rep.counts["prerequisite not backported"] += 1
            on_branch.append(f"{p.sha[:10]} {p.subject[:50]} ({when})")
        rep.rescues.append(
            {
                "backport": str(real.id),
                "subject": real.message.splitlines()[0][:80],
                "source": f"{where} {full_sha[:10]}",
                "identical": same,
                "equivalent": equivalent,
                "prerequisites": on_branch,
                "seconds": round(time.perf_counter() - t, 2),
            }
        )
        return
    rep.counts["not rescued by prerequisites"] += 1


def siblings_of(repo: pygit2.Repository, kind: str) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    for b in repo.branches.local:
        tip = str(repo.branches.local[b].target)
        if kind == "systemd" and re.fullmatch(r"v\d+-stable", b):
            out[b] = (tip, full(repo, f"v{version(b)[0]}"))
        elif kind == "cpython" and re.fullmatch(r"\d+\.\d+", b):
            main = full(repo, "refs/heads/main")
            hide = str(repo.merge_base(pygit2.Oid(hex=tip), pygit2.Oid(hex=main))) if main else None
            out[b] = (tip, hide)
    return out


def report(rep: Replay) -> None:
    c = rep.counts
    n = c["backports"]
    clean = c["clean"]
    print(f"{rep.branch}: {n} backports replayed in {rep.wall:.1f}s")
    print(
        f"  clean {clean} ({100 * clean / max(n, 1):.0f}%), already applied {c['empty']}, "
        f"conflict {c['conflict']}, no source {c['no source in the repository']}"
    )
    print(
        f"  identical to the real backport {c['identical']} of {clean} clean "
        f"({100 * c['identical'] / max(clean, 1):.0f}%); differences {dict(rep.classes)}"
    )
    print(
        f"  from a sibling backport {c['from a sibling backport']}, rescued by a sibling "
        f"{c['rescued by a sibling']}; levers {dict(rep.levers)}"
        + (
            f"; clean only thanks to ort {rep.levers.get('ort', 0)} "
            f"(conflict without it {c['conflict without ort']})"
            if c["conflict without ort"]
            else ""
        )
    )
    if rep.variants:
        print(
            f"  other merges on the {c['conflict']} conflicts: {dict(sorted(rep.variants.items()))}"
        )
    if rep.conflict_kinds:
        print(f"  conflict kinds (over all sources tried): {dict(rep.conflict_kinds)}")
    ms = 1000 * rep.pick_seconds / max(rep.pick_attempts, 1)
    print(f"  {rep.pick_attempts} pick attempts, {ms:.1f} ms per pick")
    if rep.errors:
        print(f"  errors ({len(rep.errors)}): " + "; ".join(rep.errors[:5]))
    chained = [k for k in c if k.startswith("chain:")]
    print("  chained: " + ", ".join(f"{k[7:]} {c[k]}" for k in chained) if chained else "")
    if rep.rescues or c["not rescued by prerequisites"]:
        print(
            f"  prerequisites: rescued {c['rescued by prerequisites']} of {c['conflict']} "
            f"conflicts, {c['rescued: identical to the real backport']} identical to what was "
            f"shipped, {c['rescued: the real backport plus its prerequisites']} the shipped "
            f"backport plus its prerequisites; prerequisites backported by the maintainers earlier "
            f"{c['prerequisite backported earlier']}, later {c['prerequisite backported later']}, "
            f"never {c['prerequisite not backported']}"
        )
        for x in rep.rescues:
            same = (
                "identical"
                if x["identical"]
                else "the real backport plus these"
                if x["equivalent"]
                else "differs from the real backport"
            )
            print(f"    {x['subject'][:70]} ({same}, {x['seconds']}s)")
            for p in x["prerequisites"]:
                print(f"       needs {p}")
    for e in rep.chain_events[:5]:
        print(f"    grafted on the chain: {e}")
    for r in rep.releases:
        lines = "?" if r["lines"] is None else r["lines"]
        print(
            f"    {r['tag']}: chain differs from the release in {r['files']} files, {lines} lines"
        )


def table(files: list[Path]) -> None:
    """Markdown rows from --json outputs (docs/replay.md)."""
    print(
        "| branch | backports | clean | identical (of clean) | differences | conflicts "
        "| from a sibling (rescued) | picked by ort (conflict without it) | ms/pick "
        "| release drift (last tag) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in files:
        for d in json.loads(f.read_text()):
            c = Counter(d["counts"])
            n, clean = c["backports"], c["clean"]
            rel = d["releases"]
            drift = (
                f"{rel[-1]['files']} files, {rel[-1]['lines']} lines ({rel[-1]['tag']})"
                if rel
                else "no release tag"
            )
            diffs = ", ".join(f"{k} {v}" for k, v in sorted(d["differences"].items())) or "-"
            print(
                f"| {d['branch']} | {n} | {clean} ({100 * clean / max(n, 1):.0f}%) "
                f"| {c['identical']} ({100 * c['identical'] / max(clean, 1):.0f}%) | {diffs} "
                f"| {c['conflict']} | {c['from a sibling backport']} "
                f"({c['rescued by a sibling']}) | {d['levers'].get('ort', 0)} "
                f"({c['conflict without ort']}) "
                f"| {d['ms_per_pick']:.0f} | {drift} |"
            )


def main() -> None:
    if sys.argv[1:2] == ["--table"]:
        table([Path(a) for a in sys.argv[2:]])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--branch", action="append", required=True, help="NAME[:BASE[:END]]")
    ap.add_argument(
        "--security-only",
        action="store_true",
        help="only backports adding a Misc/NEWS.d/next/Security entry (CPython)",
    )
    ap.add_argument("--levers", action="store_true", help="also count what ort rescues")
    ap.add_argument(
        "--merge-options",
        action="store_true",
        help="on conflicts, try libgit2's merge options and ort alone (clean? identical?)",
    )
    ap.add_argument(
        "--path-map",
        action="append",
        default=[],
        metavar="UPSTREAM=STABLE",
        help="a series path_map entry (`dir/` prefix or file), repeatable",
    )
    ap.add_argument(
        "--prerequisites",
        type=int,
        default=0,
        metavar="N",
        help="on conflicts, search prerequisites (at most N commits) and compare the result",
    )
    ap.add_argument(
        "--any-prerequisite",
        action="store_true",
        help="as prerequisites.vetted_only: false (default: only commits a stable branch took)",
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    kind = "systemd" if any(b.startswith("v") for b in args.branch) else "cpython"
    # The public mirrors are partial clones: trees may name blobs that are not here. The
    # engine refuses to write such a tree (its commit could not be pushed); the replay only
    # measures, so it lets picks name them (a blob whose content is needed still errors).
    pygit2.settings.enable_strict_object_creation(False)
    out = []
    with tempfile.TemporaryDirectory(prefix="stablectl-replay-") as tmp:
        repo = scratch(args.repo, Path(tmp) / "scratch.git")
        src = pygit2.Repository(str(args.repo))
        for ref in src.references:
            if ref.startswith(("refs/heads/", "refs/tags/")):
                repo.references.create(ref, src.references[ref].target, force=True)
        sibs = siblings_of(repo, kind)
        for spec in args.branch:
            rep = replay_branch(
                args.repo,
                repo,
                spec,
                sibs,
                security_only=args.security_only,
                compare_levers=args.levers,
                merge_options=args.merge_options,
                path_map=dict(m.split("=", 1) for m in args.path_map),
                prerequisites=args.prerequisites,
                vetted_only=not args.any_prerequisite,
            )
            report(rep)
            out.append(
                {
                    "branch": rep.branch,
                    "counts": dict(rep.counts),
                    "differences": dict(rep.classes),
                    "conflict_kinds": dict(rep.conflict_kinds),
                    "levers": dict(rep.levers),
                    "merge_options": dict(rep.variants),
                    "different": rep.different,
                    "releases": rep.releases,
                    "ms_per_pick": 1000 * rep.pick_seconds / max(rep.pick_attempts, 1),
                    "seconds": rep.wall,
                    "errors": rep.errors,
                    "chain_events": rep.chain_events,
                    "prerequisite_rescues": rep.rescues,
                }
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
