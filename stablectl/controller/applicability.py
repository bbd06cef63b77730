"""Applicability: verdicts about a line's *code*, each with its evidence.

A line anchored at an old release (or one whose upstream branch has ended) sees upstream fixes
for code it never had, code it already has, and code it does not build. Each verdict here is
about the line's tree, never about what upstream chose to backport:

- **not built** (before picking): every code file the fix changes is under the line's build
  profile (`applicability.not_built`, every series', and the series' own `not_built`: `PC/`,
  bundled libraries replaced by the system's). `not-applicable`, listed, no PR.
- **documentation only** (a clean pick): picked onto the line, the fix changes only NEWS
  entries and documentation (`applicability.not_code`): nothing of the line's code is fixed,
  and no CVE is claimed for it. `not-applicable` when no source changes code there.
- **already there** (a conflict): every line the fix adds to the code (its tests aside) is on
  the line, in order, and none of the lines it removes (folded into an earlier backport, or
  the line never had what it removes: gh-97514's abstract sockets on 2.7): `applied`, with
  the evidence.
- **absent code** (a conflict), proven twice on the code (its tests aside): none of the lines
  it removes or keeps as context is in the line's version of the files it modifies (under
  the series' `path_map`, so 2.7's `Lib/httplib.py` is where `Lib/http/client.py`'s code
  lives), *and* none of the definitions its hunks sit in is defined anywhere in the line's
  tree (definitions.py). `not-applicable`, both proofs in the evidence.

Anything else that conflicts stays a conflict: a person must look. "Upstream did not backport
it" is information for that person (`upstream_note`), never a reason to open no PR: upstream
stops backporting to a line long before distributions stop shipping it.

A maintainer overturns any `not-applicable` verdict with `/stablectl backport SHA` on the
fork, which opens the PR anyway; `applicability.skip: false` opens draft PRs for all of them.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pygit2

from stablectl.controller.definitions import enclosing, file_anywhere, undefined
from stablectl.controller.selection import Fix, FixState, Source, VerdictKind
from stablectl.gitops.diffs import changed_paths as commit_paths
from stablectl.gitops.path_map import map_path
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Applicability, Series

DAY = 86400
# Part of every remembered verdict's key (planner.Planner._judged): bump it when a rule changes.
VERDICTS_VERSION = "3"
SUBSTANTIAL = 8  # a stripped line this long says something about the code it is in

IsCode = Callable[[str], bool]

# Verdict kinds (selection.VerdictKind), by their short names here.
NOT_BUILT = VerdictKind.NOT_BUILT
DOCUMENTATION_ONLY = VerdictKind.DOCUMENTATION_ONLY
ABSENT_CODE = VerdictKind.ABSENT_CODE
ALREADY_THERE = VerdictKind.ALREADY_THERE
FOLLOW_UP = VerdictKind.FOLLOW_UP  # (planner.py) a follow-up of a fix the line does not take


@dataclass(frozen=True)
class Verdict:
    """What the line's code says about a fix: `not-applicable` or `applied`, why, and the
    evidence (one line per file or fact checked)."""

    state: FixState
    reason: str
    evidence: tuple[str, ...] = ()
    # Which rule: a VEX statement's justification is chosen by it.
    kind: VerdictKind | None = None


def code_paths(paths: Sequence[str], is_code: IsCode) -> list[str]:
    return [p for p in paths if is_code(p)]


def not_built(
    series: Series, paths: Sequence[str], is_code: IsCode, profile: Sequence[str] = ()
) -> Verdict | None:
    """Every code file the fix changes (at its name on the line) is outside the line's
    build profile: the policy's (`applicability.not_built`, `profile`) and the series' own."""
    globs = [*profile, *series.not_built]
    if not globs:
        return None
    code = [map_path(series.path_map, p) for p in code_paths(paths, is_code)]
    if not code:
        return None
    if not all(any(fnmatch.fnmatchcase(p, g) for g in globs) for p in code):
        return None
    own = f"series {series.name}: not_built"

    def where(p: str) -> tuple[str, str]:
        g = next(g for g in [*series.not_built, *profile] if fnmatch.fnmatchcase(p, g))
        return g, own if g in series.not_built else "applicability.not_built"

    found = [where(p) for p in code]
    rules = ", ".join(dict.fromkeys(w for _g, w in found))
    return Verdict(
        FixState.NOT_APPLICABLE,
        f"not built by this line: it changes only {_names(code)} ({rules})",
        tuple(f"{p}: matches {g} ({w})" for p, (g, w) in zip(code, found, strict=True)),
        NOT_BUILT,
    )


def changed_paths(repo: pygit2.Repository, old_tree: str, new_tree: str) -> list[str]:
    """Paths that differ between two trees."""
    a = repo[pygit2.Oid(hex=old_tree)].peel(pygit2.Tree)
    b = repo[pygit2.Oid(hex=new_tree)].peel(pygit2.Tree)
    out: list[str] = []
    for d in a.diff_to_tree(b).deltas:
        for p in (d.old_file.path, d.new_file.path):
            if p not in out:
                out.append(p)
    return out


def documentation_only(
    repo: pygit2.Repository, onto: str, tree: str, is_code: IsCode
) -> list[str] | None:
    """The paths a clean pick (onto `onto`, giving `tree`) changes when none is code; None
    when it changes code (or nothing: an empty pick is "already there")."""
    onto_tree = str(repo[pygit2.Oid(hex=onto)].peel(pygit2.Commit).tree_id)
    paths = changed_paths(repo, onto_tree, tree)
    if not paths or code_paths(paths, is_code):
        return None
    return paths


def judge_conflict(
    repo: pygit2.Repository,
    series: Series,
    *,
    source: str,
    tip: str,
    is_code: IsCode,
    searched: Sequence[str],
    is_test: IsCode | None = None,
) -> Verdict | None:
    """A conflicting fix's verdict from the line's code (its tests aside, `is_test`): its
    change already there (`applied`), its code absent (`not-applicable`), or None (a real
    conflict)."""
    commit = repo[pygit2.Oid(hex=source)].peel(pygit2.Commit)
    if len(commit.parents) != 1:
        return None
    tree = repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree
    paths, truncated = commit_paths(repo, commit)
    if paths and not truncated and not code_paths(paths, is_code):
        return Verdict(
            FixState.NOT_APPLICABLE,
            f"it changes only documentation and NEWS ({_names(paths)}): no code to fix",
            tuple(f"{p}: not code (applicability.not_code)" for p in paths[:5]),
            DOCUMENTATION_ONLY,
        )
    files = code_part(_changes(repo, commit, is_code), is_test)
    if not files:
        return None
    already = _already_there(repo, tree, series, files)
    if already is not None:
        return already
    parent = commit.parents[0].tree
    return _absent_code(repo, tree, tip, parent, series, files, searched)


def remembered_verdict(
    index: CommitIndex,
    repo: pygit2.Repository,
    rules: Applicability,
    series: Series,
    source: str,
    tip: str,
    searched: tuple[str, ...],
) -> Verdict | None:
    """judge_conflict, remembered in the index: the same source, tip, path map and rules give
    the same verdict (a warm plan of a 3.6.8 line judged 46 conflicts again in 1.8 s)."""
    key = json.dumps(
        [
            VERDICTS_VERSION,
            source,
            tip,
            series.stable_branch,
            series.path_map,
            rules.not_code,
            rules.tests,
            list(searched),
        ],
        sort_keys=True,
    )
    hit = index.memo_get("verdicts", key)
    if isinstance(hit, list):
        if not hit:
            return None
        return Verdict(FixState(hit[0]), hit[1], tuple(hit[2]), VerdictKind(hit[3]))
    v = judge_conflict(
        repo,
        series,
        source=source,
        tip=tip,
        is_code=rules.is_code,
        searched=searched,
        is_test=rules.is_test,
    )
    data = [] if v is None else [str(v.state), v.reason, list(v.evidence), v.kind]
    index.memo_put("verdicts", key, data)
    return v


def code_part(files: list[_FileChange], is_test: IsCode | None) -> list[_FileChange]:
    """The files a verdict about the line's code reads: the code the fix changes, its tests
    aside (a test of code the line lacks, or one that already has its fix, says nothing
    more); all of them for a fix that changes tests alone."""
    if is_test is None:
        return files
    code = [fc for fc in files if not is_test(fc.path)]
    return code or files


@dataclass
class _FileChange:
    path: str
    added_file: bool
    hunks_added: list[list[str]]  # per hunk, the stripped non-blank lines it adds
    removed: set[str]  # substantial stripped lines it removes (and does not add back)
    context: set[str]  # substantial stripped lines around its changes
    starts: list[int]  # per hunk, the 0-based line of the parent's file where it changes


def _changes(repo: pygit2.Repository, commit: pygit2.Commit, is_code: IsCode) -> list[_FileChange]:
    """Per code file the commit changes: what it adds, removes and needs around it."""
    diff = repo.diff(commit.parents[0], commit, context_lines=3)
    out: list[_FileChange] = []
    for patch in diff:
        if patch is None or patch.delta.is_binary:
            continue
        added_file = patch.delta.status == pygit2.enums.DeltaStatus.ADDED
        path = patch.delta.new_file.path if added_file else patch.delta.old_file.path
        if not is_code(path):
            continue
        fc = _FileChange(path, added_file, [], set(), set(), [])
        all_added: set[str] = set()
        for hunk in patch.hunks:
            block = []
            fc.starts.append(_hunk_start(hunk))
            for line in hunk.lines:
                text = line.content.strip()
                if line.origin == "+" and text:
                    block.append(text)
                    all_added.add(text)
                elif line.origin == "-" and len(text) >= SUBSTANTIAL:
                    fc.removed.add(text)
                elif line.origin == " " and len(text) >= SUBSTANTIAL:
                    fc.context.add(text)
            if block:
                fc.hunks_added.append(block)
        fc.removed -= all_added
        out.append(fc)
    return out


def _hunk_start(hunk: pygit2.DiffHunk) -> int:
    """The 0-based line of the old file where a hunk's first change is (a line it removes,
    or the line its first added lines follow)."""
    before = hunk.old_start - 1
    for line in hunk.lines:
        if line.origin == "-":
            return line.old_lineno - 1
        if line.origin == "+":
            return max(before, 0)
        if line.origin == " ":
            before = line.old_lineno - 1
    return max(before, 0)


def _raw_lines(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> list[str] | None:
    """The lines of the file at `path` in `tree` as they are; None when it has none."""
    try:
        obj = repo[tree[path].id]
    except KeyError:
        return None
    if not isinstance(obj, pygit2.Blob):
        return None
    return bytes(obj.read_raw()).decode("utf-8", "replace").splitlines()


def _line_text(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> list[str] | None:
    """Its stripped, non-blank lines (what verdicts compare)."""
    raw = _raw_lines(repo, tree, path)
    return None if raw is None else [s for line in raw if (s := line.strip())]


def _contains_in_order(lines: Sequence[str], block: Sequence[str]) -> bool:
    """`block` appears in `lines` as consecutive (stripped, non-blank) lines."""
    n = len(block)
    first = block[0]
    return any(lines[i : i + n] == list(block) for i, x in enumerate(lines) if x == first)


def _already_there(
    repo: pygit2.Repository, tree: pygit2.Tree, series: Series, files: list[_FileChange]
) -> Verdict | None:
    """Every code file's added hunks are on the line in order and none of its removed lines
    is: the change was folded into an earlier backport."""
    evidence: list[str] = []
    substantial = 0
    for fc in files:
        here = map_path(series.path_map, fc.path)
        lines = _line_text(repo, tree, here)
        if lines is None:
            return None
        if not all(_contains_in_order(lines, block) for block in fc.hunks_added):
            return None
        kept = set(lines)
        if fc.removed & kept:
            return None
        substantial += sum(len(x) >= SUBSTANTIAL for b in fc.hunks_added for x in b)
        substantial += len(fc.removed)
        n = sum(len(b) for b in fc.hunks_added)
        evidence.append(
            f"{here}: all {n} line(s) it adds are there in order, none of the "
            f"{len(fc.removed)} it removes"
        )
    if substantial == 0:
        return None  # nothing specific enough to recognise
    return Verdict(
        FixState.APPLIED,
        f"its change is already on {series.stable_branch}: the line's code is as the fix "
        "leaves it (folded into an earlier backport, or never had what it removes)",
        tuple(evidence),
        ALREADY_THERE,
    )


def _absent_code(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    tip: str,
    parent: pygit2.Tree,
    series: Series,
    files: list[_FileChange],
    searched: Sequence[str],
) -> Verdict | None:
    """Nothing the fix changes exists on the line, proven twice: none of the lines it
    removes or keeps as context is in the line's version of the files it modifies (looked
    up under the path map; a missing file has none), *and* none of the definitions its hunks
    sit in is defined anywhere in the line's tree (a module-level hunk: no file of that name
    anywhere). Files it adds do not count. Anything less is a conflict for a person."""
    branch = series.stable_branch
    modified = [fc for fc in files if not fc.added_file]
    if not modified:
        return None
    missing: list[str] = []
    no_context: list[str] = []
    evidence: list[str] = []
    for fc in modified:
        here = map_path(series.path_map, fc.path)
        lines = _line_text(repo, tree, here)
        looked = fc.path if here == fc.path else f"{fc.path} (as {here})"
        around = fc.removed | fc.context
        if lines is None:
            missing.append(looked)
            evidence.append(f"{looked}: no such file on {branch}")
            continue
        if not around or around & set(lines):
            return None  # some of the code it changes or needs is there, or nothing to tell
        no_context.append(looked)
        evidence.append(f"{looked}: 0 of {len(around)} removed/context lines present")
    defined = _definitions_absent(repo, tree, tip, parent, series, modified)
    if defined is None:
        return None
    evidence += defined
    parts = []
    if missing:
        parts.append(f"changes {_names(missing)}, which {branch} does not have")
    if no_context:
        parts.append(f"the lines it changes in {_names(no_context)} are not in {branch}")
    if searched:
        evidence.append("sources searched: " + ", ".join(searched))
    return Verdict(FixState.NOT_APPLICABLE, "; ".join(parts), tuple(evidence), ABSENT_CODE)


def _definitions_absent(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    tip: str,
    parent: pygit2.Tree,
    series: Series,
    files: list[_FileChange],
) -> list[str] | None:
    """The second proof, as evidence: each definition a hunk sits in is not defined in the
    line's tree (a module-level hunk: its file is nowhere there); None when one is."""
    branch = series.stable_branch
    defs = []
    evidence: list[str] = []
    for fc in files:
        old = _raw_lines(repo, parent, fc.path) or []
        for start in fc.starts:
            d = enclosing(fc.path, old, start)
            if d is not None:
                defs.append(d)
                continue
            here = map_path(series.path_map, fc.path)
            elsewhere = file_anywhere(tree, here)
            if elsewhere is not None:
                return None  # module-level code of a file the line has (somewhere)
            note = f"{here}: no file of that name anywhere on {branch} (a module-level hunk)"
            if note not in evidence:
                evidence.append(note)
    absent, present = undefined(repo, tip, defs)
    if present:
        return None
    evidence += [f"{d.describe()} is not defined anywhere on {branch}" for d in absent]
    return evidence


def upstream_note(
    index: CommitIndex,
    fix: Fix,
    series: Series,
    sources: Sequence[Source],
    own_backports: Sequence[str],
    days: int,
) -> str:
    """Information for the person resolving a conflict, never a verdict: upstream's own
    branch took later fixes from main but not this one."""
    if any(s.kind in ("own-backport", "sibling-backport") for s in sources):
        return ""
    original = next((s for s in sources if s.kind == "original"), None)
    facts = index.facts(original.sha) if original is not None else None
    if facts is None:
        return ""
    for sha in reversed(own_backports):
        later = index.facts(sha)
        if later is None or later.commit_time - facts.commit_time < days * DAY:
            continue
        took = (later.commit_time - facts.commit_time) // DAY
        return (
            f"upstream did not backport it to {series.sources[0]}, which took later fixes from "
            f"main ({later.sha[:10]}, {took} days after this one): check whether the line's "
            "code is affected"
        )
    return ""


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
