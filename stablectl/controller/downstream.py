"""Downstream adaptations: what distributions already published for the same upstream fixes.

For 2.7.18 alone Debian (python2.7 2.7.18-8+deb11u1: ten CVE patches), Red Hat and ActiveState
each adapted the same upstream fixes by hand; on a 2.7.18 line those fixes conflict. A series
names such sources (`series[].downstream`): Debian's quilt `debian/patches` (DEP-3 headers
`Origin:`, `Bug:`, `Bug-Debian:`, or a plain "Backport of <sha>"), an RPM spec whose
`PatchNNNN:` lines give the order, a fork's branch. Each patch is matched to the fix it adapts
(an upstream commit it names, a CVE id in its name or headers, a `bpo-`/`gh-` issue) and, when
the fix conflicts, applied *alone* onto the line: a distribution's other patches (its paths,
its build) are not the mirror's. What applies becomes a PR "adapted from Debian's
`CVE-2020-8492.diff`", with its interdiff to upstream's change, reviewed as any adaptation
(`Stablectl-Adapted`, bound to the approved head) and naming its origin
(`Stablectl-Downstream:`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from stablectl.controller.selection import Fix
from stablectl.errors import GitError
from stablectl.gitops.git import git, output
from stablectl.gitops.messages import (
    Adapted,
    adapted_message,
    adapted_of,
    cherry_pick_message,
    downstream_trailer,
)
from stablectl.gitops.patches import Patch, apply_onto, parse_patch, read_queue
from stablectl.gitops.path_map import map_path
from stablectl.gitops.pick import Picker
from stablectl.gitops.provenance import Interdiff, repick
from stablectl.policy import Downstream, Series

DOWNSTREAM_REFS = "refs/stablectl-downstream/"
_SHA_NAMED = re.compile(
    r"(?:\bcommit|\bbackport of|\bcherry[- ]picked from(?: commit)?|\bupstream(?: commit)?"
    r"|/commit/)\s*:?\s*([0-9a-f]{7,40})\b",
    re.I,
)
_FULL_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_ISSUE = re.compile(
    r"\b(bpo|gh)-(\d+)\b|\bissue\s?#?(\d{4,6})\b|bugs\.python\.org/issue(\d+)", re.I
)
_GH_ISSUE_URL = re.compile(r"github\.com/python/cpython/issues/(\d+)", re.I)
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.I)
_SPEC_PATCH = re.compile(r"^Patch(\d*)\s*:\s*(\S+)", re.M | re.I)
_SPEC_APPLY = re.compile(r"^%patch\s*(?:-P\s*)?(\d+)\b|^%patch(\d+)\b", re.M)


@dataclass(frozen=True)
class DownstreamPatch:
    """One published adaptation, with what it names of upstream."""

    source: str  # the downstream source's name (policy)
    name: str  # the patch's file name (or a fork commit's SHA)
    diff: bytes
    shas: tuple[str, ...]  # upstream commits it names (abbreviated or full)
    issues: frozenset[str]  # "bpo-39603", "gh-95778"
    cves: frozenset[str]

    def describe(self) -> str:
        return f"{self.source}'s `{self.name}`"

    def matches(self, fix: Fix) -> str:
        """Why it adapts `fix` ("" when it does not)."""
        members = [m.lower() for m in (fix.key, *fix.members)]
        for s in self.shas:
            if len(s) >= 7 and any(m.startswith(s.lower()) for m in members):
                return f"it names upstream commit {s[:10]}"
        common = sorted(self.cves & {c.upper() for c in fix.cves})
        if common:
            return f"it names {common[0]}"
        issues = sorted(self.issues & set(fix.issues))
        if issues:
            return f"it names {issues[0]}"
        return ""


def downstream_ref(series: str, index: int) -> str:
    """Where a fork-branch downstream source of a series is fetched to in the cache."""
    return f"{DOWNSTREAM_REFS}{series}/{index}"


def read_downstream(
    d: Downstream, repo_path: Path, base: str | None, ref: str
) -> tuple[list[DownstreamPatch], list[str]]:
    """The patches of one downstream source, and what could not be read."""
    try:
        if d.patches is not None:
            path = Path(d.patches).expanduser()
            if not path.exists():
                return [], [f"downstream {d.name}: {d.patches} not found"]
            patches = _spec(path) if path.suffix == ".spec" else read_queue(path)
        else:
            patches = _fork_commits(repo_path, ref, base)
    except (OSError, ValueError, GitError) as e:
        return [], [f"downstream {d.name}: {e}"]
    return [_identified(d.name, p) for p in patches if p.diff], []


def _identified(source: str, p: Patch) -> DownstreamPatch:
    head = f"{p.name}\n{p.message}\n{p.header}"
    shas = [*([p.upstream] if p.upstream else []), *_SHA_NAMED.findall(head)]
    shas += _FULL_SHA.findall(head)
    issues: set[str] = set()
    for kind, num, old, bpo in _ISSUE.findall(head):
        if kind:
            issues.add(f"{kind.lower()}-{int(num)}")
        elif old or bpo:
            issues.add(f"bpo-{int(old or bpo)}")
    issues |= {f"gh-{int(n)}" for n in _GH_ISSUE_URL.findall(head)}
    cves = frozenset(c.upper() for c in _CVE.findall(head))
    return DownstreamPatch(
        source,
        p.name,
        p.diff,
        tuple(dict.fromkeys(s.lower() for s in shas)),
        frozenset(issues),
        cves,
    )


def _spec(spec: Path) -> list[Patch]:
    """An RPM spec's patches in the order `%patchN` applies them (or, with `%autosetup` /
    `%autopatch`, their numbers' order), read beside the spec or from `../SOURCES/`."""
    text = spec.read_text(errors="replace")
    declared = {int(n or 0): name for n, name in _SPEC_PATCH.findall(text)}
    applied = [int(a or b) for a, b in _SPEC_APPLY.findall(text)]
    order = [n for n in dict.fromkeys(applied) if n in declared] or sorted(declared)
    out = []
    for n in order:
        name = declared[n].rsplit("/", 1)[-1]
        for where in (spec.parent, spec.parent.parent / "SOURCES"):
            if (where / name).is_file():
                out.append(parse_patch(name, (where / name).read_bytes()))
                break
        else:
            raise ValueError(f"Patch{n}: {name} is not beside {spec.name} nor in ../SOURCES")
    return out


def _fork_commits(repo_path: Path, ref: str, base: str | None) -> list[Patch]:
    """A fork branch's commits after the base, oldest first, each as a patch."""
    if base is None:
        return []
    proc = git(["rev-list", "--reverse", "--no-merges", ref, "--not", base], git_dir=repo_path)
    out = []
    for sha in output(proc).split():
        text = git(
            ["format-patch", "-1", "--stdout", "--no-signature", sha], git_dir=repo_path
        ).stdout
        out.append(parse_patch(sha, text))
    return out


def mirror_resolutions(
    repo: pygit2.Repository,
    sibling: Series,
    tip: str,
    base: str,
    carries: Callable[[str], bool],
    path_map: Mapping[str, str],
) -> list[DownstreamPatch]:
    """The conflicts a person resolved on a sibling line of this mirror: its merged adapted
    commits (`Stablectl-Adapted`, reviewed and merged through their PR: `carries`), oldest
    first, each as a patch in the target line's paths (`path_map`)."""
    walker = repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(pygit2.Oid(hex=base))
    out = []
    for c in reversed(list(walker)):
        rec = adapted_of(c.message)
        if rec is None or len(c.parents) != 1 or not carries(str(c.id)):
            continue
        text = repo.diff(c.parents[0], c).patch or ""
        out.append(
            DownstreamPatch(
                f"this mirror's {sibling.stable_branch}",
                f"{str(c.id)[:12]} (adapted in #{rec.pr})",
                _mapped(text, path_map).encode("utf-8", "surrogateescape"),
                (rec.source,),
                frozenset(),
                frozenset(),
            )
        )
    return out


def _mapped(diff: str, path_map: Mapping[str, str]) -> str:
    """A patch's file headers moved to where a line keeps upstream's paths."""
    if not path_map:
        return diff
    pm = dict(path_map)
    out = []
    for line in diff.splitlines(keepends=True):
        m = re.match(r"diff --git a/(\S+) b/(\S+)(\r?\n?)$", line)
        if m:
            a, b = map_path(pm, m.group(1)), map_path(pm, m.group(2))
            line = f"diff --git a/{a} b/{b}{m.group(3)}"
        elif line.startswith(("--- a/", "+++ b/")):
            head, path = line[:6], line[6:].rstrip("\r\n")
            line = head + map_path(pm, path) + line[6 + len(path) :]
        out.append(line)
    return "".join(out)


@dataclass(frozen=True)
class Adaptation:
    """A conflicting fix resolved by a downstream patch applied alone onto the line."""

    patch: DownstreamPatch
    why: str  # why this patch is the fix's ("it names upstream commit …")
    source: str  # the upstream commit it adapts (its re-pick is what the interdiff is to)
    tree: str
    change: Interdiff  # re-pick of `source` → the adapted tree, as verify recomputes it

    def describe(self) -> str:
        return (
            f"adapted from {self.patch.describe()} ({self.why}): {self.change.lines} lines "
            f"differ from upstream's {self.source[:10]} picked onto the line"
        )


def adapt(
    repo: pygit2.Repository,
    picker: Picker,
    patch: DownstreamPatch,
    why: str,
    source: str,
    onto: str,
) -> Adaptation | None:
    """`patch` applied alone onto `onto` as the adaptation of upstream `source`: None when
    it does not apply there, or gives exactly upstream's pick (nothing adapted)."""
    tree, _why = apply_onto(Path(repo.path), onto, patch.diff)
    if tree is None:
        return None
    draft = adapted_commit(repo, picker, source, onto, tree, patch, None)
    _outcome, change = repick(repo, picker, repo[pygit2.Oid(hex=draft)].peel(pygit2.Commit), source)
    if change.empty:
        return None
    return Adaptation(patch, why, source, tree, change)


def adapted_commit(
    repo: pygit2.Repository,
    picker: Picker,
    source: str,
    onto: str,
    tree: str,
    patch: DownstreamPatch,
    record: Adapted | None,
) -> str:
    """The adaptation's commit on `onto`: upstream's message and author, its cherry-pick
    trailer, where it came from (`Stablectl-Downstream:`) and, once its PR is known, the
    adaptation's record; the policy's committer at a fixed time (the same inputs give one
    SHA)."""
    src = repo[pygit2.Oid(hex=source)].peel(pygit2.Commit)
    parent = repo[pygit2.Oid(hex=onto)].peel(pygit2.Commit)
    message = cherry_pick_message(src.message, source)
    message = message.rstrip("\n") + "\n" + downstream_trailer(patch.source, patch.name) + "\n"
    if record is not None:
        message = adapted_message(message, record)
    return picker.commit_as(src, parent, tree, message)


def candidates(patches: Sequence[DownstreamPatch], fix: Fix) -> list[tuple[DownstreamPatch, str]]:
    """The patches that adapt `fix`, in the sources' preference order, with why."""
    return [(p, why) for p in patches if (why := p.matches(fix))]
