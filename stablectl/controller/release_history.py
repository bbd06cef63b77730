"""Point releases, derived from the stable branch each run (no state of its own):

- a *release commit* on the stable branch (an empty commit whose message ends with the trailer
  `Stablectl-Release: 3.11.2.1`, merged through a reviewed release PR) marks a release;
- every release commit gets its annotated tag (`release.tag`, e.g. `v3.11.2.1`), created once
  and never moved, then artifacts (reproducible `.tar.xz`/`.tgz`, `SHA256SUMS`, a JSON
  manifest, OSV records) and a forge release with notes;
- fixes on the stable branch after the newest release commit are *unreleased*; when the
  trigger says so (`security`: one of them is a security fix, after the quiet period;
  `manual`: `/stablectl release` or `stablectl release`), a release PR proposes the next
  release commit, states its review deadline, and is merged like a backport PR once approved
  and past the deadline.
A crash between any two of these steps is picked up by the next run from what git and the
forge show.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

import pygit2

from stablectl.controller.plan import SeriesPlan
from stablectl.controller.selection import Fix
from stablectl.gitops.messages import (
    RELEASE_TRAILER,
    MessageInfo,
    is_infrastructure,
    parse_message,
    prerequisite_of,
)
from stablectl.gitops.provenance import Provenance
from stablectl.policy import Policy, Series

COMMIT_TRAILER = "Stablectl-Commit"
PREVIOUS_TRAILER = "Stablectl-Previous"


@dataclass(frozen=True)
class ShippedFix:
    commit: str  # on the stable branch
    subject: str
    source: str | None  # what the trailer names
    original: str | None  # the fix's upstream original (from the plan)
    security: bool
    rules: list[str]
    cves: list[str]
    issues: list[str]
    prerequisite_for: str | None = None  # the fix it was picked for (its trailer)
    follows: str | None = None  # the fix it follows up upstream (from the plan)


@dataclass(frozen=True)
class ReleaseCommit:
    version: str
    commit: str
    previous: str  # the previous release commit, or the base
    time: int = 0


@dataclass(frozen=True)
class SeriesReleases:
    series: Series
    base_sha: str
    tip: str
    releases: list[ReleaseCommit]  # oldest first
    unreleased: list[ShippedFix]
    # release commit -> the fixes it released, derived from its range (never from a manifest)
    shipped: dict[str, list[ShippedFix]] = dataclasses.field(default_factory=dict)

    @property
    def next_n(self) -> int:
        return len(self.releases) + 1


def version_of(policy: Policy, series: Series, n: int) -> str:
    return f"{series.name}.{n}"


def tag_of(policy: Policy, series: Series, n: int) -> str:
    return policy.release.tag.format(series=series.name, n=n, version=f"{series.name}.{n}")


def tag_message(
    policy: Policy, series: Series, *, version: str, commit: str, previous: tuple[str, str]
) -> str:
    """The release tag's message: it names its version, its commit and the previous release's
    tag object (the base tag's for the first), so the signed tags of a series form a chain a
    downstream checks without remembering anything (docs/security.md)."""
    prev_tag, prev_object = previous
    return (
        f"{policy.project} {version}\n\nPoint release of {series.stable_branch}.\n\n"
        f"{RELEASE_TRAILER}: {version}\n{COMMIT_TRAILER}: {commit}\n"
        f"{PREVIOUS_TRAILER}: {prev_tag} {prev_object}\n"
    )


def tag_chain(message: str) -> dict[str, str]:
    """The trailers `tag_message` writes, as read back from a tag (missing ones absent)."""
    out = {}
    for key in (RELEASE_TRAILER, COMMIT_TRAILER, PREVIOUS_TRAILER):
        m = re.search(rf"^{key}:[ \t]*(.+?)[ \t]*$", message, re.M)
        if m:
            out[key] = m.group(1)
    return out


def release_trailer_version(message: str) -> str | None:
    m = re.search(rf"^{RELEASE_TRAILER}:\s*(\S+)\s*$", message, re.M)
    return m.group(1) if m else None


def scan_series(repo: pygit2.Repository, sp: SeriesPlan, tip: str) -> SeriesReleases:
    """Release commits and the fixes after the newest one, walking base..tip."""
    base = sp.selection.base_sha
    walker = repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(pygit2.Oid(hex=base))
    walker.simplify_first_parent()
    commits = list(reversed(list(walker)))
    by_member: dict[str, Fix] = {}
    for pf in sp.fixes:
        for m in [pf.candidate.fix.key, *pf.candidate.fix.members]:
            by_member[m] = pf.candidate.fix
    releases: list[ReleaseCommit] = []
    pending: list[ShippedFix] = []
    shipped: dict[str, list[ShippedFix]] = {}
    previous = base
    upstream = Provenance(repo)
    for c in commits:
        msg = c.message
        version = release_trailer_version(msg)
        if version is not None:
            releases.append(ReleaseCommit(version, str(c.id), previous, int(c.commit_time)))
            shipped[str(c.id)] = pending
            previous = str(c.id)
            pending = []
            continue
        if is_infrastructure(msg):
            continue
        info = parse_message(msg)
        source = info.cherry_picked_from[-1] if info.cherry_picked_from else None
        fix = next((by_member[s] for s in info.cherry_picked_from if s in by_member), None)
        # Claims come from upstream's own message (what the trailer names, when upstream has
        # it), never from the stable commit's: a message on the mirror can say anything.
        facts = _upstream_message(repo, upstream, source)
        pending.append(
            ShippedFix(
                commit=str(c.id),
                subject=msg.splitlines()[0] if msg else "",
                source=source,
                original=fix.key if fix else None,
                security=bool(fix and fix.security),
                rules=sorted({h.rule for h in fix.flags}) if fix else [],
                cves=sorted(set(fix.cves if fix else []) | set(facts.cves)),
                issues=list(fix.issues) if fix else list(facts.issues),
                prerequisite_for=prerequisite_of(msg),
                follows=fix.follows if fix else None,
            )
        )
    return SeriesReleases(
        series=sp.series,
        base_sha=base,
        tip=tip,
        releases=releases,
        unreleased=pending,
        shipped=shipped,
    )


def _upstream_message(
    repo: pygit2.Repository, upstream: Provenance, source: str | None
) -> MessageInfo:
    """The facts of upstream's commit `source` (and of the original it names), or none."""
    if source is None:
        return parse_message("")
    full, origin = upstream.resolve(source)
    if full is None or origin != "upstream":
        return parse_message("")
    info = parse_message(repo[pygit2.Oid(hex=full)].peel(pygit2.Commit).message)
    cves, issues = list(info.cves), list(info.issues)
    for named in info.cherry_picked_from:
        o_full, o_origin = upstream.resolve(named)
        if o_full is not None and o_origin == "upstream":
            o = parse_message(repo[pygit2.Oid(hex=o_full)].peel(pygit2.Commit).message)
            cves += o.cves
            issues += o.issues
    return dataclasses.replace(
        info, cves=tuple(dict.fromkeys(cves)), issues=tuple(dict.fromkeys(issues))
    )


# --------------------------------------------------------------------- release PRs


def release_commit(
    repo: pygit2.Repository,
    policy: Policy,
    series: Series,
    *,
    tip: str,
    version: str,
    fixes: list[ShippedFix],
) -> str:
    """The empty commit that becomes the release: deterministic (committer time = tip's)."""
    head = repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit)
    ident = policy.identity
    sig = pygit2.Signature(ident.name, ident.email, head.commit_time, head.commit_time_offset)
    lines = [f"Release {version}", "", f"{len(fixes)} fixes since the previous release:", ""]
    lines += [f"- {f.subject}" for f in fixes]
    lines += ["", f"{RELEASE_TRAILER}: {version}", ""]
    return str(repo.create_commit(None, sig, sig, "\n".join(lines), head.tree.id, [head.id]))


def iso_time(ts: int) -> str:
    """A Unix time as UTC ISO 8601 (`2026-11-26T12:38:45Z`)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unreleased_security(sr: SeriesReleases) -> bool:
    return any(f.security for f in sr.unreleased)
