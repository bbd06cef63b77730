"""Fix states: is a flagged fix still wanted on the line, and if not, why.

In order: excluded by the policy; applied (a trailer on the stable branch names a member and
that commit carries its change, verbatim or as a recorded adaptation; or a member is on it);
in the base (the base tag's history has a member); reverted upstream (and the revert not
itself reverted); applied or in the base by patch-id (no trailer). Otherwise pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stablectl.controller.selection.model import Fix, FixState
from stablectl.controller.selection.summaries import Summary, in_paths
from stablectl.gitops.scan import CommitIndex


@dataclass(frozen=True)
class Known:
    """What the stable branch and the base already carry, read once per series."""

    stable: Summary  # the stable branch since the base, with paths
    pre_base: Summary  # main's commits in the base since it branched, with paths
    base: str
    base_tag: str
    base_time: int
    excluded: Mapping[str, str]  # SHA prefix (lower case) -> reason
    # Stable commits whose trailer names an upstream commit they do not carry (not its change
    # re-picked, nor a recorded adaptation of it): their trailers apply nothing.
    unproven: frozenset[str] = frozenset()

    @property
    def proven_stable(self) -> Summary:
        """The stable branch's summary without the links of unproven commits: a trailer that
        names a change the commit does not carry joins it to nothing."""
        if not self.unproven:
            return self.stable
        links = {k: v for k, v in self.stable["links"].items() if k not in self.unproven}
        return {**self.stable, "links": links}

    @property
    def stable_named(self) -> set[str]:
        return {
            t
            for sha, targets in self.stable["links"].items()
            if sha not in self.unproven
            for t in targets
        }

    @property
    def stable_shas(self) -> set[str]:
        return set(self.stable["meta"])

    @property
    def pre_base_known(self) -> set[str]:
        return set(self.pre_base["meta"]) | {v[0] for v in self.pre_base["prs"].values()}


def excluded_by(excluded: Mapping[str, str], shas: Iterable[str]) -> str | None:
    """The policy's reason when one of `shas` starts with an excluded SHA prefix (lower case,
    as the policy's `exclude` entries, mapped to their reasons)."""
    names = list(shas)
    return next((r for s, r in excluded.items() for m in names if m.startswith(s)), None)


class Reverts:
    """Which groups upstream reverted (a revert of a revert restores)."""

    def __init__(self, reverted_by: Mapping[str, list[str]]) -> None:
        self.reverted_by = reverted_by

    def __call__(self, root: str, depth: int = 0) -> bool:
        if depth > 20:
            return False
        return any(not self(r, depth + 1) for r in self.reverted_by.get(root, ()))


def fix_state(
    index: CommitIndex,
    fix: Fix,
    known: Known,
    *,
    reverted: bool,
    on_branch: Mapping[str, str],
) -> tuple[FixState, str]:
    early = state_without_patch_ids(index, fix, known, reverted=reverted, on_branch=on_branch)
    if early is not None:
        return early
    pid_hit = _patch_id_match(index, fix, known)
    if pid_hit is not None:
        in_base = pid_hit in known.pre_base["meta"] or in_paths(pid_hit, known.pre_base)
        where = f"in {known.base_tag}" if in_base else "applied"
        state = FixState.IN_BASE if in_base else FixState.APPLIED
        return state, f"same patch-id as {pid_hit[:10]} ({where}, no trailer)"
    return FixState.PENDING, ""


def state_without_patch_ids(
    index: CommitIndex,
    fix: Fix,
    known: Known,
    *,
    reverted: bool,
    on_branch: Mapping[str, str],
) -> tuple[FixState, str] | None:
    """A fix's state where names, ancestry and reverts settle it; None when only patch-ids
    can (`patch_ids_needed`)."""
    every = set(fix.members) | {fix.key}
    ex = excluded_by(known.excluded, every)
    if ex is not None:
        return FixState.EXCLUDED, ex
    if hit := sorted(every & known.stable_named):
        return FixState.APPLIED, f"trailer names {hit[0][:10]}"
    if hit := sorted(every & known.stable_shas):
        return FixState.APPLIED, f"{hit[0][:10]} is on the stable branch"
    if hit := sorted(every & known.pre_base_known):
        return FixState.IN_BASE, f"{hit[0][:10]} is in {known.base_tag}"
    if (anc := _in_base(index, every, known, on_branch)) is not None:
        return FixState.IN_BASE, f"{anc[:10]} is in {known.base_tag}"
    if reverted:
        return FixState.REVERTED, "reverted upstream"
    return None


def _in_base(
    index: CommitIndex, every: Iterable[str], known: Known, on_branch: Mapping[str, str]
) -> str | None:
    for m in sorted(every):
        if m in on_branch:
            continue  # windows exclude the base by construction
        f = index.facts(m)
        # A commit made after the base tag cannot be in it (a day of clock skew allowed).
        if f is None or f.commit_time > known.base_time + 86400:
            continue
        if index.is_ancestor(m, known.base):
            return m
    return None


def patch_ids_needed(index: CommitIndex, fix: Fix, known: Known) -> list[str]:
    """The commits whose patch-ids `_patch_id_match` may read for `fix`: its members, and the
    stable branch's and base history's commits that could share one (so a selection can have
    them computed side by side first)."""
    members, others = _patch_id_scope(index, fix, known)
    return [*members, *others]


def _patch_id_scope(index: CommitIndex, fix: Fix, known: Known) -> tuple[list[str], list[str]]:
    """(members with one parent, the commits (in SHA order) that changed exactly the paths
    of one of them: only those can share a patch-id)."""
    paths: set[str] = set()
    shapes: set[frozenset[str]] = set()
    members: list[str] = []
    exact = True
    for m in fix.members:
        f = index.facts(m)
        if f is None or len(f.parents) != 1:
            continue
        members.append(m)
        paths.update(f.paths)
        shapes.add(frozenset(f.paths))
        exact = exact and not f.paths_truncated
    found: set[str] = set()
    for summ in (known.stable, known.pre_base):
        for p in paths:
            found.update(summ["paths"].get(p, ()))
    others = []
    for sha in sorted(found - set(fix.members)):
        if exact:
            f = index.facts(sha)
            if f is None or f.paths_truncated or frozenset(f.paths) not in shapes:
                continue
        others.append(sha)
    return members, others


def _patch_id_match(index: CommitIndex, fix: Fix, known: Known) -> str | None:
    """A commit of the stable branch or the base's own history with a member's patch-id.

    A patch-id hashes each changed file's header with its name, so only a commit changing
    exactly a member's set of paths can share it: the others are never diffed (a 2.7 line's
    base history touches the files of most fixes; their patch-ids were a fifth of its plan)."""
    members, others = _patch_id_scope(index, fix, known)
    pids = {pid for m in members if (pid := index.patch_id(m))}
    if not pids:
        return None
    return next((sha for sha in others if index.patch_id(sha) in pids), None)
