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

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from stablectl import __version__
from stablectl.controller.plan import SeriesPlan
from stablectl.errors import GitError
from stablectl.forge.base import CheckState, Marker, PullRequest
from stablectl.gitops.archive import Artifact, build_tarballs, sha256sums
from stablectl.gitops.messages import parse_message
from stablectl.policy import Policy, Series
from stablectl.templates import render

RELEASE_TRAILER = "Stablectl-Release"
MANIFEST_SCHEMA = "stablectl.release/1"


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

    @property
    def next_n(self) -> int:
        return len(self.releases) + 1


def version_of(policy: Policy, series: Series, n: int) -> str:
    return f"{series.name}.{n}"


def tag_of(policy: Policy, series: Series, n: int) -> str:
    return policy.release.tag.format(series=series.name, n=n, version=f"{series.name}.{n}")


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
    by_member: dict[str, Any] = {}
    for pf in sp.fixes:
        for m in [pf.candidate.fix.key, *pf.candidate.fix.members]:
            by_member[m] = pf.candidate.fix
    releases: list[ReleaseCommit] = []
    pending: list[ShippedFix] = []
    previous = base
    for c in commits:
        msg = c.message
        version = release_trailer_version(msg)
        if version is not None:
            releases.append(ReleaseCommit(version, str(c.id), previous, int(c.commit_time)))
            previous = str(c.id)
            pending = []
            continue
        if "Stablectl-Infrastructure:" in msg:
            continue
        info = parse_message(msg)
        source = info.cherry_picked_from[-1] if info.cherry_picked_from else None
        fix = next((by_member[s] for s in info.cherry_picked_from if s in by_member), None)
        pending.append(
            ShippedFix(
                commit=str(c.id),
                subject=msg.splitlines()[0] if msg else "",
                source=source,
                original=fix.key if fix else None,
                security=bool(fix and fix.security),
                rules=sorted({h.rule for h in fix.flags}) if fix else [],
                cves=sorted(set(fix.cves if fix else []) | set(info.cves)),
                issues=list(fix.issues) if fix else list(info.issues),
            )
        )
    return SeriesReleases(
        series=sp.series, base_sha=base, tip=tip, releases=releases, unreleased=pending
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


def release_pr_body(
    policy: Policy,
    series: Series,
    *,
    version: str,
    tag: str,
    fixes: list[ShippedFix],
    deadline: dt.datetime,
    marker: Marker,
) -> str:
    return render(
        "release_pr.md.j2",
        version=version,
        tag=tag,
        series=series,
        fixes=fixes,
        deadline=deadline.strftime("%Y-%m-%d %H:%M UTC"),
        marker=marker.render(),
        hours=policy.release.review_hours,
    )


# --------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class BuiltRelease:
    version: str
    tag: str
    commit: str
    directory: Path
    artifacts: list[Artifact]
    notes: str
    manifest: dict[str, Any]
    extra_files: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [a.path for a in self.artifacts] + self.extra_files


def create_tag(cache_path: Path, policy: Policy, *, tag: str, commit: str, message: str) -> None:
    """An annotated tag in the cache (signed when STABLECTL_SIGNING_KEY names a key)."""
    ident = policy.identity
    args = [
        "git",
        "--git-dir",
        str(cache_path),
        "-c",
        f"user.name={ident.name}",
        "-c",
        f"user.email={ident.email}",
    ]
    key = os.environ.get("STABLECTL_SIGNING_KEY")
    sign: list[str] = []
    if key:
        fmt = os.environ.get("STABLECTL_SIGNING_FORMAT", "ssh")
        args += ["-c", f"gpg.format={fmt}", "-c", f"user.signingkey={key}"]
        sign = ["-s"]
    env = dict(os.environ, GIT_COMMITTER_DATE=_commit_date(cache_path, commit))
    proc = subprocess.run(
        [*args, "tag", "-a", *sign, "-F", "-", tag, commit],
        input=message,
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise GitError(f"cannot create tag {tag}: {proc.stderr.strip()}")


def _commit_date(cache_path: Path, commit: str) -> str:
    repo = pygit2.Repository(str(cache_path))
    c = repo[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
    return f"{c.commit_time} +0000"


@dataclass(frozen=True)
class ReleaseLinks:
    """What the release files link to: the forge's PRs and checks, the web pages."""

    prs: list[PullRequest]
    checks_of: Callable[[str], list[CheckState]]
    web_fork: str | None
    web_upstream: str | None


def build_release(
    repo: pygit2.Repository,
    policy: Policy,
    sp: SeriesPlan,
    rc: ReleaseCommit,
    *,
    tag: str,
    tag_sha: str | None,
    out: Path,
    links: ReleaseLinks,
) -> BuiltRelease:
    """Tarballs, SHA256SUMS, manifest.json, RELEASE-NOTES.md and OSV records under OUT/TAG."""
    s = sp.series
    stem = policy.release.tarball.format(project=policy.project, version=rc.version)
    directory = out / tag
    artifacts = build_tarballs(repo, rc.commit, stem, directory)
    fixes = _release_fixes(repo, sp, rc)
    merged = {
        (p.marker.original if p.marker else None): p
        for p in links.prs
        if p.state == "merged" and p.marker and p.marker.series == s.name
    }
    previous_tag = (
        tag_of(policy, s, int(rc.version.rsplit(".", 1)[1]) - 1)
        if rc.previous != sp.selection.base_sha
        else s.base
    )
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "stablectl": __version__,
        "project": policy.project,
        "series": s.name,
        "version": rc.version,
        "tag": tag,
        "tag_object": tag_sha,
        "commit": rc.commit,
        "branch": s.stable_branch,
        "base": {"tag": s.base, "commit": sp.selection.base_sha},
        "previous": {"tag": previous_tag, "commit": rc.previous},
        "fixes": [_fix_json(f, merged.get(f.original), links.checks_of) for f in fixes],
        "artifacts": [{"name": a.path.name, "sha256": a.sha256, "size": a.size} for a in artifacts],
    }
    notes = render(
        "release_notes.md.j2",
        project=policy.project,
        series=s,
        version=rc.version,
        tag=tag,
        fixes=fixes,
        base_tag=s.base,
        previous_tag=previous_tag,
        artifacts=artifacts,
        web_upstream=links.web_upstream,
        merged=merged,
    )
    records = osv_records(policy, s, rc, fixes=fixes, tag=tag, web_fork=links.web_fork)
    extra = _write_files(
        directory, artifacts=artifacts, manifest=manifest, notes=notes, records=records
    )
    return BuiltRelease(
        version=rc.version,
        tag=tag,
        commit=rc.commit,
        directory=directory,
        artifacts=artifacts,
        notes=notes,
        manifest=manifest,
        extra_files=extra,
    )


def _fix_json(
    f: ShippedFix, pr: PullRequest | None, checks_of: Callable[[str], list[CheckState]]
) -> dict[str, Any]:
    """A fix in the manifest, with the PR that reviewed it and the checks on its head."""
    return {
        "commit": f.commit,
        "subject": f.subject,
        "original": f.original,
        "source": f.source,
        "security": f.security,
        "rules": f.rules,
        "cves": f.cves,
        "issues": f.issues,
        "pr": pr.url if pr else None,
        "checks": [
            {"name": c.name, "conclusion": c.conclusion, "url": c.url}
            for c in (checks_of(pr.head_sha) if pr else [])
        ],
    }


def _write_files(
    directory: Path,
    *,
    artifacts: list[Artifact],
    manifest: dict[str, Any],
    notes: str,
    records: list[dict[str, Any]],
) -> list[Path]:
    """SHA256SUMS, the manifest, the notes and the OSV records; returns the files to publish
    besides the tarballs."""
    sums = directory / "SHA256SUMS"
    sums.write_text(sha256sums(artifacts))
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (directory / "RELEASE-NOTES.md").write_text(notes)
    extra = [sums, directory / "manifest.json"]
    for rec in records:
        p = directory / f"osv-{rec['id']}.json"
        p.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        extra.append(p)
    return extra


def _release_fixes(repo: pygit2.Repository, sp: SeriesPlan, rc: ReleaseCommit) -> list[ShippedFix]:
    parent = str(repo[pygit2.Oid(hex=rc.commit)].peel(pygit2.Commit).parents[0].id)
    if parent == rc.previous:
        return []
    sr = scan_series(repo, sp, parent)
    return sr.unreleased


def osv_records(
    policy: Policy,
    s: Series,
    rc: ReleaseCommit,
    *,
    fixes: list[ShippedFix],
    tag: str,
    web_fork: str | None,
) -> list[dict[str, Any]]:
    """One OSV record per CVE fixed in this release: the mirror's own fixed commit, so that
    scanners reading the mirror see its release as fixed (the PSF's records name upstream
    commits only)."""
    out = []
    repo_url = web_fork or policy.fork.git
    when = iso_time(rc.time)
    for f in fixes:
        for cve in f.cves:
            out.append(
                {
                    "schema_version": "1.6.0",
                    "id": f"{policy.project.upper()}-STABLE-{rc.version}-{cve}",
                    "modified": when,
                    "published": when,
                    "aliases": [cve],
                    "summary": f.subject[:120],
                    "details": f"Fixed in {s.stable_branch} by {f.commit} (backport of "
                    f"{f.original or f.source}), released in {tag}.",
                    "affected": [
                        {
                            "ranges": [
                                {
                                    "type": "GIT",
                                    "repo": repo_url,
                                    "events": [{"introduced": "0"}, {"fixed": f.commit}],
                                }
                            ],
                            "versions": [],
                        }
                    ],
                    "references": [
                        {"type": "ADVISORY", "url": f"https://www.cve.org/CVERecord?id={cve}"}
                    ],
                }
            )
    return out


def iso_time(ts: int) -> str:
    """A Unix time as UTC ISO 8601 (`2026-11-26T12:38:45Z`)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unreleased_security(sr: SeriesReleases) -> bool:
    return any(f.security for f in sr.unreleased)
