"""Release artifacts: the tag, reproducible tarballs, SHA256SUMS, manifest.json, the release
notes and OSV records of one release commit (what `publishing.py` uploads and `verify` checks).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl import __version__
from stablectl.controller.plan import SeriesPlan
from stablectl.controller.release import (
    ReleaseCommit,
    ShippedFix,
    iso_time,
    scan_series,
    tag_of,
)
from stablectl.errors import GitError
from stablectl.forge.base import CheckState, PullRequest
from stablectl.gitops.archive import Artifact, build_tarballs, sha256sums
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Policy, Series
from stablectl.templates import render

MANIFEST_SCHEMA = "stablectl.release/1"


@dataclass(frozen=True)
class BuiltRelease:
    version: str
    tag: str
    commit: str
    directory: Path
    artifacts: list[Artifact]
    notes: str
    manifest: JSONDoc
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
    manifest: JSONDoc = {
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
) -> JSONDoc:
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
        "prerequisite_for": f.prerequisite_for,
        "follows": f.follows,
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
    manifest: JSONDoc,
    notes: str,
    records: list[JSONDoc],
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
) -> list[JSONDoc]:
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
