"""Carrying out a release: the tag (created once, pushed, never moved) and the forge release
with every artifact (tarballs, SHA256SUMS, manifest, notes, OSV records)."""

from __future__ import annotations

from pathlib import Path

import pygit2

from stablectl.controller import artifacts
from stablectl.controller.identities import ci_checks, stablectl_prs
from stablectl.controller.sync.actions import PublishRelease, TagRelease
from stablectl.forge.base import Forge
from stablectl.gitops.cache import SIGNED_TAGS, RepoCache
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.policy import Policy

CONTENT_TYPES = {
    ".xz": "application/x-xz",
    ".tgz": "application/gzip",
    ".json": "application/json",
    ".md": "text/markdown",
    ".asc": "application/pgp-signature",
}


def core_assets(policy: Policy, version: str) -> set[str]:
    """The files whose presence means a release is published (uploaded last)."""
    stem = policy.release.tarball.format(project=policy.project, version=version)
    return {f"{stem}.tar.xz", f"{stem}.tgz", "SHA256SUMS", "manifest.json"}


def push_tag(policy: Policy, cache: RepoCache, pusher: ForkPusher, t: TagRelease) -> None:
    """Create the annotated tag in the cache, push it (create only) and record it as the
    fork's, as the next fetch would see it."""
    artifacts.create_tag(cache.path, policy, tag=t.tag, commit=t.commit, message=t.message)
    tag_obj = cache.resolve(f"refs/tags/{t.tag}")
    assert tag_obj is not None
    pusher.push([RefUpdate(f"refs/tags/{t.tag}", tag_obj, None)])
    cache.repo.references.create(f"refs/fork-tags/{t.tag}", pygit2.Oid(hex=tag_obj), force=True)
    cache.repo.references.create(f"{SIGNED_TAGS}{t.tag}", pygit2.Oid(hex=tag_obj), force=True)
    cache.repo.references.delete(f"refs/tags/{t.tag}")


def publish(
    policy: Policy, forge: Forge, cache: RepoCache, *, out_dir: Path, p: PublishRelease
) -> int:
    """Build the artifacts and upload those the forge release lacks; returns how many."""
    rc = p.release
    release = p.published  # read when the publishing was decided, just before
    names = {a.name for a in release.assets} if release else set()
    prs = stablectl_prs(policy, forge, "all")
    release_pr = next(
        (
            x
            for x in prs
            if x.state == "merged"
            and x.marker is not None
            and x.marker.kind == "release"
            and x.marker.series == p.series_plan.series.name
            and x.marker.extra.get("version") == rc.version
        ),
        None,
    )
    links = artifacts.ReleaseLinks(
        prs=prs,
        # Only what a CI identity reported is named as tested.
        checks_of=lambda sha: ci_checks(policy, forge.checks(sha)),
        web_fork=forge.web_url(),
        web_upstream=policy.upstream.web,
        reviews_of=forge.reviews,
        release_pr=release_pr,
    )
    built = artifacts.build_release(
        cache.repo,
        policy,
        p.series_plan,
        rc,
        tag=p.tag,
        tag_sha=cache.resolve(f"refs/fork-tags/{p.tag}"),
        out=out_dir,
        links=links,
    )
    # The core files go last: a run that stops half-way is finished by the next one, which
    # looks only for them.
    core = core_assets(policy, rc.version)
    missing = sorted((f for f in built.files if f.name not in names), key=lambda f: f.name in core)
    if release is None:
        release = forge.create_release(p.tag, f"{policy.project} {rc.version}", built.notes)
    for f in missing:
        ctype = CONTENT_TYPES.get(f.suffix, "text/plain")
        forge.upload_asset(release, f.name, f.read_bytes(), ctype)
    return len(missing)
