"""Release artifacts: the tag, reproducible tarballs, SHA256SUMS, manifest.json, the release
notes and OSV records of one release commit (what `publishing.py` uploads and `verify` checks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl import __version__
from stablectl.controller.gate import approvers_of
from stablectl.controller.plan import SeriesPlan
from stablectl.controller.release_history import (
    ReleaseCommit,
    ShippedFix,
    iso_time,
    scan_series,
    tag_of,
)
from stablectl.controller.release_key import policy_trust, release_key
from stablectl.controller.verify.context import queue_refs
from stablectl.errors import GitError
from stablectl.forge.base import CheckState, PullRequest, Review
from stablectl.gitops.archive import Artifact, build_tarballs, file_artifact, sha256sums
from stablectl.gitops.export import quilt, quilt_tarball, series_commits
from stablectl.gitops.git import git
from stablectl.gitops.messages import adapted_of
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Provenance
from stablectl.gitops.signing import (
    check_signed_file,
    check_signed_tag,
    detached_signatures,
    make_tag,
    sign_file,
    signing_key_from_env,
)
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
    """An annotated tag in the cache, signed with the key `STABLECTL_SIGNING_KEY` names (none:
    unsigned, refused when `release.signing.required`), its signature checked against the
    pinned keys before anything pushes it (a failed check deletes the tag again)."""
    key = release_key(policy, f"tag {tag}")
    ident = policy.identity
    make_tag(cache_path, tag, commit, message, tagger=(ident.name, ident.email), key=key)
    if key is None:
        return
    try:
        check_signed_tag(cache_path, tag, policy_trust(policy))
    except GitError:
        git(["tag", "-d", tag], git_dir=cache_path, check=False)  # never pushed, never kept
        raise


@dataclass(frozen=True)
class ReleaseLinks:
    """What the release files link to: the forge's PRs and checks, the web pages."""

    prs: list[PullRequest]
    checks_of: Callable[[str], list[CheckState]]
    web_fork: str | None
    web_upstream: str | None
    reviews_of: Callable[[int], list[Review]] = lambda _n: []
    release_pr: PullRequest | None = None  # the merged release PR of this release


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
    stem = policy.release.tarball.format(project=policy.project, version=rc.version)
    directory = out / tag
    artifacts = build_tarballs(repo, rc.commit, stem, directory)
    fixes = _release_fixes(repo, sp, rc)
    merged = _merged_prs(links.prs, sp.series)
    previous_tag = _previous_tag(policy, sp, rc)
    patches = _patch_series(repo, policy, sp, rc, stem, directory)
    manifest = _manifest(
        repo,
        policy,
        sp,
        rc,
        tag=tag,
        tag_sha=tag_sha,
        previous_tag=previous_tag,
        fixes=fixes,
        merged=merged,
        artifacts=[*artifacts, patches],
        links=links,
    )
    notes = _release_notes(
        policy,
        sp,
        rc,
        tag=tag,
        previous_tag=previous_tag,
        fixes=fixes,
        merged=merged,
        artifacts=artifacts,
        links=links,
    )
    extra = _write_files(
        policy,
        directory,
        artifacts=[*artifacts, patches],
        manifest=manifest,
        notes=notes,
        records=osv_records(policy, sp.series, rc, fixes=fixes, tag=tag, web_fork=links.web_fork),
    )
    return BuiltRelease(
        version=rc.version,
        tag=tag,
        commit=rc.commit,
        directory=directory,
        artifacts=artifacts,
        notes=notes,
        manifest=manifest,
        extra_files=[patches.path, *extra],
    )


def _release_notes(
    policy: Policy,
    sp: SeriesPlan,
    rc: ReleaseCommit,
    *,
    tag: str,
    previous_tag: str,
    fixes: list[ShippedFix],
    merged: dict[str | None, PullRequest],
    artifacts: list[Artifact],
    links: ReleaseLinks,
) -> str:
    """RELEASE-NOTES.md: the line's fixes (with their PRs) since the previous release, the
    security fixes judged not to concern it, the artifacts."""
    return render(
        "release_notes.md.j2",
        project=policy.project,
        series=sp.series,
        version=rc.version,
        tag=tag,
        fixes=fixes,
        previous_tag=previous_tag,
        artifacts=artifacts,
        web_upstream=links.web_upstream,
        merged=merged,
        not_affected=_not_affected(sp, fixes),
    )


def _merged_prs(prs: Sequence[PullRequest], s: Series) -> dict[str | None, PullRequest]:
    """The series' merged backport PRs by the upstream original they carry."""
    return {
        (p.marker.original if p.marker else None): p
        for p in prs
        if p.state == "merged" and p.marker and p.marker.series == s.name
    }


def _previous_tag(policy: Policy, sp: SeriesPlan, rc: ReleaseCommit) -> str:
    """The tag this release follows: the previous release's, or the base tag for the first."""
    if rc.previous == sp.selection.base_sha:
        return sp.series.base
    return tag_of(policy, sp.series, int(rc.version.rsplit(".", 1)[1]) - 1)


def _manifest(
    repo: pygit2.Repository,
    policy: Policy,
    sp: SeriesPlan,
    rc: ReleaseCommit,
    *,
    tag: str,
    tag_sha: str | None,
    previous_tag: str,
    fixes: list[ShippedFix],
    merged: dict[str | None, PullRequest],
    artifacts: list[Artifact],
    links: ReleaseLinks,
) -> JSONDoc:
    """manifest.json: the release, its base and previous release, its review and tests, each
    fix with its provenance recomputed from upstream, every artifact's digest."""
    s = sp.series
    ident = policy.identity
    provenance = Provenance(
        repo,
        queue_refs(policy),
        lambda: Picker(repo, Committer(ident.name, ident.email), path_map=s.path_map),
    )
    policy_release = policy.release
    return {
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
        "review": {
            "hours": policy_release.review_hours,
            "short_review": policy_release.short_review,
            "release_pr": links.release_pr.url if links.release_pr else None,
            "approvers": _approvers(policy, links.release_pr, links),
        },
        "tested": {
            # The release commit itself, as tagged: the release PR's head, merged by
            # fast-forward after the required checks passed on it.
            "commit": rc.commit,
            "checks": [
                {"name": c.name, "conclusion": c.conclusion, "url": c.url}
                for c in links.checks_of(rc.commit)
            ],
        },
        "fixes": [
            _fix_json(repo, policy, provenance, f, merged.get(f.original), links, s) for f in fixes
        ],
        "artifacts": [{"name": a.path.name, "sha256": a.sha256, "size": a.size} for a in artifacts],
    }


def _patch_series(
    repo: pygit2.Repository,
    policy: Policy,
    sp: SeriesPlan,
    rc: ReleaseCommit,
    stem: str,
    directory: Path,
) -> Artifact:
    """`<stem>.patches.tar.xz`: the release as a quilt series on the base tag (DEP-3 headers,
    one patch per backport), for distributions that carry patches rather than tarballs."""
    files = quilt(
        Path(repo.path), policy, sp.series, series_commits(repo, sp.selection.base_sha, rc.commit)
    )
    path = directory / f"{stem}.patches.tar.xz"
    data = quilt_tarball(files, f"{stem}-patches", rc.time, path)
    return Artifact(path, hashlib.sha256(data).hexdigest(), len(data))


def _approvers(policy: Policy, pr: PullRequest | None, links: ReleaseLinks) -> list[str]:
    """The maintainers whose latest review approved the PR's head (as it merged)."""
    if pr is None:
        return []
    return approvers_of(policy, pr, links.reviews_of(pr.number))


def _fix_json(
    repo: pygit2.Repository,
    policy: Policy,
    provenance: Provenance,
    f: ShippedFix,
    pr: PullRequest | None,
    links: ReleaseLinks,
    series: Series,
) -> JSONDoc:
    """A fix in the manifest: where it came from, whether it is upstream's change verbatim or
    adapted (by how many lines, reviewed where), who approved it, and the checks on its PR."""
    commit = repo[pygit2.Oid(hex=f.commit)].peel(pygit2.Commit)
    recorded = adapted_of(commit.message)
    r = provenance.explain(f.commit)
    origin = r.origin
    lines = r.change.lines if r.adapted else 0
    return {
        "commit": f.commit,
        "subject": f.subject,
        "original": f.original,
        "source": f.source,
        "origin": origin or "none",
        "patch_queue": series.patches if origin == "patch-queue" else None,
        "change": "verbatim" if r.verbatim else ("adapted" if r.adapted else "none"),
        "adapted": (
            {
                "lines": lines,
                "interdiff": r.change.digest,
                "pr": recorded.pr if recorded else None,
                "recorded": bool(recorded),
            }
            if r.adapted
            else None
        ),
        "security": f.security,
        "rules": f.rules,
        "cves": f.cves,
        "issues": f.issues,
        "prerequisite_for": f.prerequisite_for,
        "follows": f.follows,
        "pr": pr.url if pr else None,
        "approvers": _approvers(policy, pr, links),
        "checks": [
            {"name": c.name, "conclusion": c.conclusion, "url": c.url}
            for c in (links.checks_of(pr.head_sha) if pr else [])
        ],
    }


def _write_files(
    policy: Policy,
    directory: Path,
    *,
    artifacts: list[Artifact],
    manifest: JSONDoc,
    notes: str,
    records: list[JSONDoc],
) -> list[Path]:
    """The manifest, the notes, the OSV records, then SHA256SUMS over every file of the release
    and its detached signature (when a signing key is set); returns the files to publish
    besides the tarballs."""
    files = [directory / "manifest.json", directory / "RELEASE-NOTES.md"]
    files[0].write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    files[1].write_text(notes)
    for rec in records:
        p = directory / f"osv-{rec['id']}.json"
        p.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        files.append(p)
    sums = directory / "SHA256SUMS"
    listed = [*artifacts, *(file_artifact(p) for p in files)]
    sums.write_text(sha256sums(listed))
    files.append(sums)
    key = signing_key_from_env()
    for stale in detached_signatures(sums.name):
        (directory / stale).unlink(missing_ok=True)
    if key is not None:
        signature = sign_file(sums, key)
        check_signed_file(sums, signature, policy_trust(policy))
        files.append(signature)
    return files


def _release_fixes(repo: pygit2.Repository, sp: SeriesPlan, rc: ReleaseCommit) -> list[ShippedFix]:
    parent = str(repo[pygit2.Oid(hex=rc.commit)].peel(pygit2.Commit).parents[0].id)
    if parent == rc.previous:
        return []
    sr = scan_series(repo, sp, parent)
    return sr.unreleased


def _not_affected(sp: SeriesPlan, fixes: Sequence[ShippedFix]) -> list[JSONDoc]:
    """The security fixes the engine judged not applicable to the line, with why and the
    evidence (docs/engine.md, Applicability): the "not affected" list a downstream would
    otherwise write by hand. A CVE this release fixes is not listed (a NEWS clarification's
    verdict does not hide its fix)."""
    shipped = {c for f in fixes for c in f.cves}
    out: list[JSONDoc] = []
    for pf in sp.fixes:
        fix = pf.candidate.fix
        if not pf.not_affected or not fix.security:
            continue
        cves = [c for c in fix.cves if c not in shipped]
        if fix.cves and not cves:
            continue
        out.append(
            {
                "subject": fix.subject,
                "original": fix.key,
                "cves": cves,
                "reason": pf.why_not_affected,
                "evidence": list(pf.evidence),
            }
        )
    return out


def osv_records(
    policy: Policy,
    s: Series,
    rc: ReleaseCommit,
    *,
    fixes: list[ShippedFix],
    tag: str,
    web_fork: str | None,
) -> list[JSONDoc]:
    """One OSV record per security fix in this release (per CVE where it has several; without
    a CVE, named by its stable commit): the mirror's own fixed commit, so that scanners
    reading the mirror see its release as fixed (the PSF's records name upstream commits only,
    and a security fix without a CVE is in no database at all)."""
    out = []
    repo_url = web_fork or policy.fork.git
    when = iso_time(rc.time)
    for f in fixes:
        if not f.security and not f.cves:
            continue
        cves: list[str | None] = list(f.cves) or [None]
        for cve in cves:
            ident = cve or f.commit[:12]
            refs: list[JSONDoc] = (
                [{"type": "ADVISORY", "url": f"https://www.cve.org/CVERecord?id={cve}"}]
                if cve
                else []
            )
            if policy.upstream.web and (f.original or f.source):
                refs.append(
                    {"type": "FIX", "url": f"{policy.upstream.web}/commit/{f.original or f.source}"}
                )
            out.append(
                {
                    "schema_version": "1.6.0",
                    "id": f"{policy.project.upper()}-STABLE-{rc.version}-{ident}",
                    "modified": when,
                    "published": when,
                    "aliases": [cve] if cve else [],
                    "summary": f.subject[:120],
                    "details": f"Fixed in {s.stable_branch} by {f.commit} (backport of "
                    f"{f.original or f.source}), released in {tag}."
                    + ("" if cve else " No CVE id was assigned to this security fix."),
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
                    "references": refs,
                }
            )
    return out
