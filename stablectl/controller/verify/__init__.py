"""`stablectl verify`: a provenance audit of the mirror, runnable by anyone with read access and
no memory of earlier runs (docs/security.md says what it proves against whom).

For each series, after fetching upstream and the mirror into the cache:

- the stable branch descends from its base tag and is linear; when this machine verified it
  before (`STATE/verify-known.json`), it must fast-forward that state (an extra check, not the
  only one);
- every commit after the base is a backport naming, by its `(cherry picked from commit …)`
  trailer, a commit upstream has (on a branch or tag fetched from upstream's URL, never from
  the fork; a commit of the series' patch queue is accepted as a *downstream patch* and listed
  as such), and re-picking that commit onto the commit's parent gives exactly its tree, or the
  exact difference is recorded in its `Stablectl-Adapted:` trailer (size and SHA-256 of the
  interdiff, and the PR where a maintainer approved a head carrying it): an unrecorded or
  changed difference is an error (commits.py);
  release commits (`Stablectl-Release:`) change no file, infrastructure commits
  (`Stablectl-Infrastructure:`) only `.github/`;
- release commits and release tags match one to one, numbered 1, 2, … along the branch; each
  tag is annotated, carries its own name, points at its release commit, and names the previous
  release's tag object (the base tag's for the first): the signed tags form a hash chain, the
  mirror's release log, replayed here against the branch. With pinned keys
  (`release.signing`, `--allowed-signers`, `--keyring`) every tag's signature must verify;
- where the release's files are at hand (`--releases DIR/<tag>/`, default the state
  directory's), `SHA256SUMS` lists every file there and nothing is missing, extra or changed,
  its signature verifies against the pinned keys, the manifest names the tag's commit, and its
  fix list and CVE ids are recomputed from upstream facts; with `--rebuild` every tarball is
  rebuilt from the tag and must match byte for byte (files.py);
- with a readable forge, each release went through its release PR (tags.py), and a kept
  release log replays against the mirror (log.py).
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from stablectl.controller.verify.commits import audit_commits
from stablectl.controller.verify.context import Audit, queue_refs
from stablectl.controller.verify.files import audit_files, rebuild
from stablectl.controller.verify.log import (
    ReleaseLog,
    check_log,
    check_release_log,
    load_known,
    save_known,
)
from stablectl.controller.verify.report import Finding, SeriesAudit, VerifyReport
from stablectl.controller.verify.tags import audit_tags, tag_message_problems
from stablectl.controller.workspace import Workspace
from stablectl.forge.base import Forge
from stablectl.gitops.signing import Trust
from stablectl.policy import Policy, Series

__all__ = [
    "Audit",
    "Finding",
    "ReleaseLog",
    "SeriesAudit",
    "VerifyReport",
    "audit_series",
    "queue_refs",
    "tag_message_problems",
    "verify",
]


def audit_series(
    a: Audit, series: Series, known: dict[str, str], *, tags: bool = True
) -> SeriesAudit:
    """The series' branch, commit by commit, then (`tags`) its releases and their files."""
    repo, name = a.repo, series.name
    audit = SeriesAudit(name, series.stable_branch)
    base = a.ws.cache.upstream_tag(series.base)
    tip = a.ws.cache.fork_branch(series.stable_branch)
    audit.base, audit.tip = base, tip
    if base is None:
        a.find("error", name, series.base, "the base tag is not upstream")
        return audit
    if tip is None:
        a.find("error", name, series.stable_branch, "the mirror has no such branch")
        return audit
    if tip != base and not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=base)):
        a.find("error", name, tip, f"the branch does not descend from {series.base}")
        return audit
    was = known.get(f"branch:{series.stable_branch}")
    if (
        was
        and was != tip
        and (was not in repo or not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=was)))
    ):
        a.find(
            "error",
            name,
            tip,
            f"REWRITTEN: {series.stable_branch} was {was} when last verified and "
            f"{tip} is not a fast-forward of it (history was rewritten)",
        )
    released = audit_commits(a, series, base, pygit2.Oid(hex=tip), base, audit)
    if tags:
        audit_tags(a, series, audit, tip, known, released)
        for entry in audit.releases:
            audit_files(a, series, audit, entry)
    return audit


def verify(
    ws: Workspace,
    policy: Policy,
    series: list[Series],
    *,
    releases_dir: Path | None,
    rebuild_tarballs: bool = False,
    record: bool = True,
    trust: Trust | None = None,
    forge: Forge | str | None = None,
    release_log: ReleaseLog | None = None,
    require_reviewed: bool | None = None,
    require_through_pr: bool = False,
) -> VerifyReport:
    """Audit the series; `require_reviewed` (default: when signing is required) makes an
    adaptation whose review no forge could confirm an error."""
    remote = policy.fork.git
    known = load_known(ws.state_dir, remote)
    trust = trust or Trust()
    a = Audit(
        ws,
        policy,
        releases_dir,
        trust,
        forge,
        require_reviewed=trust.required if require_reviewed is None else require_reviewed,
        require_through_pr=require_through_pr,
    )
    a.report.commits_only = releases_dir is None
    for s in series:
        audit = audit_series(a, s, known)
        a.report.audits.append(audit)
        if rebuild_tarballs:
            for entry in audit.releases:
                rebuild(a, s, entry)
    if release_log is not None:
        check_log(a, release_log)
        check_release_log(a, release_log.data, series)
    if record and a.report.ok:
        save_known(ws.state_dir, remote, a.report, ws.cache.repo)
    return a.report
