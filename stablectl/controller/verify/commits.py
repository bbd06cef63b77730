"""The commits of a stable branch after its base, one by one: each is upstream's change
verbatim (recomputed by re-picking, `gitops.provenance`), or an adaptation recorded with its
exact interdiff and approved, at a head carrying that interdiff, in the PR of that very fix;
release commits change nothing; infrastructure commits touch only `.github/`."""

from __future__ import annotations

import pygit2

from stablectl.controller.identities import backports, trusted_author
from stablectl.controller.release_history import release_trailer_version
from stablectl.controller.selection.states import excluded_by
from stablectl.controller.verify.context import Audit
from stablectl.controller.verify.report import AdaptedCommit, SeriesAudit
from stablectl.controller.workflows import render_workflows
from stablectl.errors import StablectlError
from stablectl.forge.base import Forge, Review
from stablectl.gitops.git import run_git
from stablectl.gitops.messages import adapted_of, downstream_of, is_infrastructure
from stablectl.gitops.objects import first_parent_diff
from stablectl.gitops.provenance import Reproduction
from stablectl.policy import Policy, Series, login_key


def audit_commits(
    a: Audit,
    series: Series,
    base: str | None,
    head: pygit2.Oid,
    since: str | None,
    audit: SeriesAudit | None = None,
) -> list[tuple[str, str]]:
    """Check each commit of since..head, oldest first; returns the release commits met, as
    (version, commit), and records in `audit.released_commits` what each released."""
    audit = audit or SeriesAudit(series.name, series.stable_branch, base=base)
    walker = a.repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)
    if since is not None:
        walker.hide(pygit2.Oid(hex=since))
    released: list[tuple[str, str]] = []
    batch: list[str] = []
    for c in reversed(list(walker)):
        version, shipped = _commit(a, series, audit, c)
        if version is not None:
            released.append((version, str(c.id)))
            audit.released_commits[str(c.id)] = batch
            batch = []
        elif shipped:
            batch.append(str(c.id))
    return released


def _commit(
    a: Audit, series: Series, audit: SeriesAudit, c: pygit2.Commit
) -> tuple[str | None, bool]:
    """Check one commit after the base: (its version if a release commit, whether it ships a
    change a release lists)."""
    name, sha, msg = series.name, str(c.id), c.message
    subject = msg.splitlines()[0] if msg else ""
    audit.counts["commits"] += 1
    if len(c.parents) != 1:
        a.find("error", name, sha, "a merge commit: stable branches are linear")
        return None, False
    paths = [
        p
        for d in first_parent_diff(c).deltas
        for p in dict.fromkeys((d.old_file.path, d.new_file.path))
    ]
    if (version := release_trailer_version(msg)) is not None or is_infrastructure(msg):
        _release_or_infrastructure(a, name, audit, sha, version, paths)
        return version, False
    r = a.provenance(series).explain(sha)
    if not r.named:
        return None, _matched_without_trailer(a, series, audit, c, paths)
    if r.source is None:
        a.find(
            "error",
            name,
            sha,
            f"names {r.named[-1]} which upstream does not have (a forged or stale trailer, a "
            "commit or tag pushed to the fork, or a patch queue commit presented as upstream?)",
        )
        return None, False
    if r.origin == "patch-queue":
        # A patch of the series' queue (a distribution's own backport, say): accepted as what
        # it is, and listed, never counted as upstream's.
        audit.counts["downstream patches"] += 1
        a.find(
            "warning",
            name,
            sha,
            f"from the series' patch queue ({series.patches}), not upstream: {subject!r}",
        )
    audit.counts["backports"] += 1
    _excluded(a, series, sha, [r.source, *r.named])
    if r.origin == "upstream":
        # An adaptation is a change of the mirror's own: it must have come through review.
        _through_review(a, series, audit, c, r.source, strict=not r.verbatim)
    if r.verbatim:
        audit.counts["identical"] += 1
        return None, True
    _adapted(a, series, audit, c, r)
    return None, True


def _excluded(a: Audit, series: Series, sha: str, upstream: list[str]) -> None:
    """A commit reproducing a change the policy excludes ("not for stable") is an error,
    however it arrived: verbatim upstream is not the same as wanted."""
    for u in upstream:
        reason = excluded_by(a.policy.exclusions, [u.lower()]) if u else None
        if reason is not None:
            a.find(
                "error",
                series.name,
                sha,
                f"carries upstream {u[:12]}, which the policy excludes ({reason})",
            )
            return


def _through_review(
    a: Audit,
    series: Series,
    audit: SeriesAudit,
    c: pygit2.Commit,
    upstream: str,
    *,
    strict: bool = False,
) -> None:
    """Every commit on a stable branch arrives through review: the merged backport PR
    stablectl opened for that upstream change, merged by the controller. One pushed straight
    to the branch is named (a warning; an error under --require-reviewed), and the next
    release PR lists it for the maintainers who approve the release."""
    sha = str(c.id)
    covered = None if a.merging else a.through_prs(series)
    if covered is None:
        return  # no forge to read: adaptations say NOT CHECKED already; verbatim is upstream
    if upstream in covered:  # full SHAs, recomputed on both sides: no prefix can stand in
        return
    subject = c.message.splitlines()[0] if c.message else ""
    audit.direct.append(sha)
    a.find(
        "error" if a.require_through_pr or strict else "warning",
        series.name,
        sha,
        f"did not come through a merged stablectl PR (pushed straight to "
        f"{series.stable_branch}?): {subject!r}"
        + (": an adaptation must be reviewed and merged through its PR" if strict else ""),
    )


def _release_or_infrastructure(
    a: Audit, name: str, audit: SeriesAudit, sha: str, version: str | None, paths: list[str]
) -> None:
    """A release commit (`version`) changes no file; an infrastructure commit only .github/."""
    if version is not None:
        audit.counts["release commits"] += 1
        if paths:
            a.find("error", name, sha, f"a release commit that changes files: {paths}")
        return
    audit.counts["infrastructure commits"] += 1
    outside = [p for p in paths if not p.startswith(".github/")]
    if outside:
        a.find("error", name, sha, f"infrastructure commit touches {outside}")
        return
    foreign = not_rendered(a.policy, a.repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit), paths)
    if foreign:
        a.find(
            "error",
            name,
            sha,
            f"an infrastructure commit whose {', '.join(foreign)} is not what `stablectl "
            "workflows` renders for this policy (a workflow changed or a file added by "
            "hand): infrastructure is only what stablectl renders",
        )


def not_rendered(policy: Policy, c: pygit2.Commit, paths: list[str]) -> list[str]:
    """The files an infrastructure commit sets that differ from what `stablectl workflows`
    renders for `policy` (its two header comment lines, which name the stablectl version and
    the policy file, aside), or that it does not render at all; deleting a file counts too."""
    rendered = {r.path: _body(r.text) for r in render_workflows(policy, "policy.yaml")}
    out = []
    for path in paths:
        try:
            blob = c.tree[path]
        except KeyError:
            out.append(path)  # deleted
            continue
        if not isinstance(blob, pygit2.Blob):
            out.append(path)
            continue
        text = bytes(blob.data).decode("utf-8", "replace")
        if path not in rendered or _body(text) != rendered[path]:
            out.append(path)
    return out


def _body(text: str) -> str:
    """A rendered workflow without its leading comment lines."""
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines)


def _matched_without_trailer(
    a: Audit, series: Series, audit: SeriesAudit, c: pygit2.Commit, paths: list[str]
) -> bool:
    """A commit naming no upstream commit: a backport by hand when re-picking some upstream
    commit gives exactly its tree (a warning), else an error. Whether it ships a change."""
    sha = str(c.id)
    same = _reproduced_upstream(a, series, c, paths, audit.base or "")
    if same is None:
        subject = c.message.splitlines()[0] if c.message else ""
        a.find("error", series.name, sha, f"no provenance: {subject!r} names no upstream commit")
        return False
    audit.counts["backports"] += 1
    audit.counts["identical"] += 1
    audit.counts["matched without trailer"] += 1
    _excluded(a, series, sha, [same])
    _through_review(a, series, audit, c, same)
    a.find(
        "warning",
        series.name,
        sha,
        f"no trailer, but re-picking upstream {same} gives exactly its tree (a backport by hand)",
    )
    return True


def _adapted(
    a: Audit, series: Series, audit: SeriesAudit, c: pygit2.Commit, r: Reproduction
) -> None:
    name, sha, msg = series.name, str(c.id), c.message
    assert r.source is not None
    audit.counts["adapted"] += 1
    recorded = adapted_of(msg)
    entry = AdaptedCommit(
        commit=sha,
        source=r.source,
        lines=r.change.lines,
        interdiff=r.change.digest,
        files=r.change.files,
        subject=msg.splitlines()[0] if msg else "",
        origin=r.origin or "none",
        pr=recorded.pr if recorded else None,
        recorded=recorded is not None,
        downstream=downstream_of(msg),
    )
    audit.adapted.append(entry)
    how = f"re-picking {r.source[:12]} onto its parent ({r.repick})"
    if recorded is None:
        a.find(
            "error",
            name,
            sha,
            f"a mirror-only change: differs from {how} by {r.change.lines} lines in "
            f"{', '.join(r.change.files)} and records no adaptation (Stablectl-Adapted: trailer, "
            "from `stablectl backport --continue`)",
        )
        return
    if not r.source.startswith(recorded.source):
        a.find(
            "error",
            name,
            sha,
            f"records an adaptation of {recorded.source[:12]}, but is a backport of "
            f"{r.source[:12]}",
        )
        return
    if recorded.interdiff is None:
        a.find(
            "error",
            name,
            sha,
            "records an adaptation without its interdiff (an older record binds no content): "
            "resolve it again with `stablectl backport --continue`",
        )
        return
    if recorded.interdiff != r.change.digest or recorded.lines != r.change.lines:
        a.find(
            "error",
            name,
            sha,
            f"records an adaptation of {recorded.lines} lines (interdiff "
            f"{recorded.interdiff[:12]}), but differs from {how} by {r.change.lines} "
            f"(interdiff {r.change.digest[:12]}): changed after review",
        )
        return
    reviewed(a, series, entry)


def reviewed(a: Audit, series: Series, entry: AdaptedCommit) -> None:
    """A recorded adaptation names the PR where a maintainer approved it. The PR must be this
    fix's backport to this series, and a maintainer's latest review must approve a head that
    carries exactly this interdiff (the commit itself, or the reviewed head it was merged
    from)."""
    name, sha, pr = series.name, entry.commit, entry.pr
    if pr is None:
        a.find("error", name, sha, "records an adaptation but no reviewing PR")
        return
    forge = a.readable_forge
    if forge is None:
        a.report.unchecked_reviews += 1
        a.find(
            "error" if a.require_reviewed else "warning",
            name,
            sha,
            f"adaptation reviewed in #{pr}: NOT CHECKED ({a.forge or 'no forge'})",
        )
        return
    try:
        pull = forge.get_pr(pr)
        reviews = forge.reviews(pr)
    except StablectlError as e:
        a.find("error", name, sha, f"cannot read #{pr} and its reviews: {e}")
        return
    if not trusted_author(a.policy, pull.author) or pull.base != series.stable_branch:
        a.find(
            "error",
            name,
            sha,
            f"records an adaptation reviewed in #{pr}, but #{pr} is not a stablectl PR into "
            f"{series.stable_branch} (opened by {pull.author or 'nobody'} into {pull.base})",
        )
        return
    # Which fix #N backports comes from the commits the forge recorded for it and its head
    # branch, never from its body (anyone with write access can edit a body).
    try:
        same_fix = backports(a.repo, forge, pull, entry.source)
    except StablectlError as e:
        a.find("error", name, sha, f"cannot read the commits of #{pr}: {e}")
        return
    if not same_fix:
        a.find(
            "error",
            name,
            sha,
            f"records an adaptation reviewed in #{pr}, but #{pr} is not the backport of "
            f"{entry.source[:12]} to {name} (by its commits and its branch {pull.head})",
        )
        return
    approvers = _approving(a, series, forge, pull.author, reviews, entry)
    entry.review_checked = True
    entry.approvers = approvers
    if not approvers:
        a.find(
            "error",
            name,
            sha,
            f"records an adaptation reviewed in #{pr}, but no maintainer's latest review "
            f"approves a head with this interdiff ({entry.interdiff[:12]})",
        )


def _approving(
    a: Audit, series: Series, forge: Forge, author: str, reviews: list[Review], e: AdaptedCommit
) -> list[str]:
    latest: dict[str, Review] = {}
    for rv in reviews:
        if rv.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login_key(rv.user)] = rv
    out = []
    for user, rv in sorted(latest.items()):
        if rv.state != "APPROVED" or not a.policy.is_maintainer(user) or user == login_key(author):
            continue
        if rv.commit == e.commit or _same_interdiff(a, series, rv.commit, e):
            out.append(user)
    return out


def _same_interdiff(a: Audit, series: Series, head: str, e: AdaptedCommit) -> bool:
    try:
        pygit2.Oid(hex=head)
        if head not in a.repo:
            return False
    except ValueError:
        return False
    r = a.provenance(series).explain(head, source=e.source)
    return r.source == e.source and r.change.digest == e.interdiff


def _reproduced_upstream(
    a: Audit, series: Series, c: pygit2.Commit, paths: list[str], base: str
) -> str | None:
    """An upstream commit (on an upstream branch, after the base, touching the same paths)
    whose re-pick onto the commit's parent gives exactly its tree."""
    if not paths:
        return None
    out = run_git(
        a.ws.cache.path,
        ["log", "--format=%H", "--no-merges", "--remotes=upstream", "--not", base, "--", *paths],
    )
    prov = a.provenance(series)
    for sha in out.split():
        r = prov.explain(str(c.id), source=sha)
        if r.verbatim and r.origin == "upstream":
            return sha
    return None
