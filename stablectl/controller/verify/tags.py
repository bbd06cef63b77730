"""Release commits and release tags: one to one, numbered 1, 2, … along the branch; each tag
annotated, named as its ref, on its release commit, naming the previous release's tag object
(the base tag's for the first), so the signed tags form a hash chain, the mirror's release
log; each signature checked against the pinned keys. With a readable forge, each release is
also checked to have gone through its release PR: merged at exactly the tagged commit,
approved by enough maintainers, the required checks green on it."""

from __future__ import annotations

from collections.abc import Callable

import pygit2

from stablectl.controller.gate import approvers_of
from stablectl.controller.identities import required_checks, stablectl_prs
from stablectl.controller.release_history import (
    COMMIT_TRAILER,
    PREVIOUS_TRAILER,
    release_trailer_version,
    tag_chain,
    tag_of,
)
from stablectl.controller.release_key import policy_trust, review_deadline
from stablectl.controller.verify.context import Audit
from stablectl.controller.verify.report import Level, ReleaseAudit, SeriesAudit
from stablectl.errors import GitError, StablectlError
from stablectl.forge.base import Forge
from stablectl.gitops.cache import FORK_TAGS
from stablectl.gitops.messages import RELEASE_TRAILER
from stablectl.gitops.signing import Trust, check_signature, split_signed_tag
from stablectl.policy import Policy, Series

FindFn = Callable[[Level, str, str], None]


def tag_message_problems(message: str, *, version: str, commit: str, previous: str) -> list[str]:
    """What verify would say of a release tag's message (sync checks its own before signing):
    it must name `version`, `commit` and `previous` ("<tag> <tag object>")."""
    chain = tag_chain(message)
    out = []
    if chain.get(RELEASE_TRAILER) != version or chain.get(COMMIT_TRAILER) != commit:
        out.append(
            f"its message does not name version {version} and commit {commit} "
            f"({RELEASE_TRAILER}:, {COMMIT_TRAILER}:)"
        )
    elif chain.get(PREVIOUS_TRAILER) != previous:
        out.append(
            f"the release log breaks: it names {chain.get(PREVIOUS_TRAILER)!r} as the previous "
            f"release, the mirror has {previous}"
        )
    return out


def audit_tags(
    a: Audit,
    series: Series,
    audit: SeriesAudit,
    tip: str,
    known: dict[str, str],
    released: list[tuple[str, str]],
) -> None:
    repo, name = a.repo, series.name
    tags = []
    n = 1
    while (ref := repo.references.get(f"{FORK_TAGS}{tag_of(a.policy, series, n)}")) or (
        n <= len(released)
    ):
        tags.append((n, tag_of(a.policy, series, n), ref))
        n += 1
    previous = (series.base, a.ws.cache.upstream_tag_object(series.base))
    for n, tag, ref in tags:
        version = f"{series.name}.{n}"
        commit_of_n = released[n - 1][1] if n <= len(released) else None
        if commit_of_n is not None and released[n - 1][0] != version:
            a.find(
                "error",
                name,
                commit_of_n,
                f"release commit number {n} on the branch names version {released[n - 1][0]}, "
                f"not {version}: releases are numbered in order",
            )
        if ref is None:
            a.find(
                "error",
                name,
                tag,
                f"no tag for the release commit {commit_of_n}: the tag was deleted, or the "
                "release run has not finished (`stablectl sync` tags it)",
            )
            previous = (tag, None)
            continue
        entry = _tag(a, series, tag, version, pygit2.Oid(hex=str(ref.target)), tip, previous, known)
        audit.releases.append(entry)
        if commit_of_n is None:
            a.find(
                "error",
                name,
                tag,
                f"a tag without a release commit on {series.stable_branch}: "
                f"{series.stable_branch} has {len(released)} releases",
            )
        elif entry.commit != commit_of_n:
            a.find("error", name, tag, f"points at {entry.commit}, not at release commit {n}")
        previous = (tag, str(ref.target))
        if commit_of_n is not None and entry.commit == commit_of_n:
            release_pr_checked(a, series, version, commit_of_n, entry)


def _tag(
    a: Audit,
    series: Series,
    tag: str,
    version: str,
    target: pygit2.Oid,
    tip: str,
    previous: tuple[str, str | None],
    known: dict[str, str],
) -> ReleaseAudit:
    repo, name = a.repo, series.name
    obj = repo[target]
    entry = ReleaseAudit(tag, str(target), obj.type == pygit2.enums.ObjectType.TAG)
    commit = obj.peel(pygit2.Commit)
    entry.commit = str(commit.id)
    was = known.get(f"tag:{tag}")
    if was and was != str(target):
        a.find("error", name, tag, f"MOVED: was {was} when last verified")
    if not (str(commit.id) == tip or repo.descendant_of(pygit2.Oid(hex=tip), commit.id)):
        a.find("error", name, tag, f"points at {commit.id} off {series.stable_branch}")
    if release_trailer_version(commit.message) != version:
        a.find("error", name, tag, "does not point at the release commit of its version")
    if not entry.annotated:
        a.find("error", name, tag, "a lightweight tag: release tags are annotated")
        return entry
    assert isinstance(obj, pygit2.Tag)
    if obj.name != tag:
        a.find("error", name, tag, f"the tag object is {obj.name!r}'s: a tag moved to this name")
    entry.previous = tag_chain(obj.message or "").get(PREVIOUS_TRAILER)
    if previous[1] is not None:
        for problem in tag_message_problems(
            obj.message or "",
            version=version,
            commit=str(commit.id),
            previous=f"{previous[0]} {previous[1]}",
        ):
            a.find("error", name, tag, problem)
    _kind, raw = repo.odb.read(target)
    payload, signature = split_signed_tag(bytes(raw))
    signatures = [(tag, signature)] if signature is not None else []
    entry.signed_by = signed(a, series, tag, payload, signatures, namespace="git")
    return entry


def signed(
    a: Audit,
    series: Series,
    what: str,
    payload: bytes,
    signatures: list[tuple[str, bytes]],
    *,
    namespace: str,
) -> str | None:
    """Who signed `payload` (each signature as (where it is, its bytes)), checked against the
    pinned keys; an unsigned or unverifiable payload is reported as the trust requires."""
    return signer_of(
        a.trust,
        payload,
        signatures,
        namespace,
        lambda lv, w, t: a.find(lv, series.name, w, t),
        what,
    )


def signer_of(
    trust: Trust,
    payload: bytes,
    signatures: list[tuple[str, bytes]],
    namespace: str,
    find: FindFn,
    what: str,
) -> str | None:
    if not signatures:
        if trust.required or trust.pinned:
            find("error", what, "UNSIGNED, but signatures are required")
        return None
    if not trust.pinned:
        find(
            "error" if trust.required else "warning",
            what,
            "signed, but no key is pinned to check it",
        )
        return None
    signer = None
    for where, signature in signatures:
        try:
            signer = check_signature(payload, signature, trust, namespace=namespace)
        except GitError as e:
            find("error", where, f"signature: {e}")
    return signer


def release_pr_checked(
    a: Audit, series: Series, version: str, commit: str, entry: ReleaseAudit
) -> None:
    """Through a readable forge: the release went through stablectl's release PR, merged at
    exactly this commit, approved by enough maintainers, with the required checks green."""
    forge = a.readable_forge
    if forge is None:
        return
    try:
        problems = release_pr_problems(a.policy, forge, series, version, commit, a.trust)
    except StablectlError as e:
        a.find("error", series.name, entry.tag, f"cannot read the release PR: {e}")
        return
    entry.review_checked = True
    for p in problems:
        a.find("error", series.name, entry.tag, p)


def release_pr_problems(
    policy: Policy,
    forge: Forge,
    series: Series,
    version: str,
    commit: str,
    trust: Trust | None = None,
) -> list[str]:
    """Why release commit `commit` of `version` did not go through its release PR (none: it
    did): the release PR stablectl opened, merged by the controller itself at exactly this
    commit, at or after its review deadline, approved by enough maintainers on it, with the
    required checks green on it from their CI identities. Shared by verify and by sync, which
    signs nothing else."""
    prs = [
        p
        for p in stablectl_prs(policy, forge, "all")
        if p.marker is not None
        and p.marker.kind == "release"
        and p.marker.series == series.name
        and p.marker.extra.get("version") == version
    ]
    merged = [p for p in prs if p.state == "merged" and p.head_sha == commit]
    if not merged:
        return [
            f"release commit {commit[:10]} of {version} is not the head of a merged release PR "
            f"stablectl opened ({len(prs)} release PRs for {version}, none merged at it): a "
            "release commit pushed to the fork is never tagged"
        ]
    pr = forge.get_pr(merged[-1].number)  # the list has no merged_by on GitHub
    m = pr.marker
    if m is None:
        return [f"release PR #{pr.number}: its marker is gone"]
    out = []
    if m.extra.get("pushed") != commit:
        out.append(f"release PR #{pr.number}: its head is not the release commit stablectl pushed")
    if not policy.is_controller(pr.merged_by):
        out.append(
            f"release PR #{pr.number} was merged by {pr.merged_by or 'a push to the branch'}, "
            f"not by the controller ({policy.controller}): a release merged by hand is never "
            "tagged"
        )
    deadline, untrusted = review_deadline(trust or policy_trust(policy), m.extra, series.name)
    if untrusted:
        out.append(f"release PR #{pr.number}: {untrusted}")
    elif deadline is None or pr.merged_at is None or pr.merged_at < deadline:
        when = f"{pr.merged_at:%Y-%m-%d %H:%M} UTC" if pr.merged_at else "at an unknown time"
        out.append(
            f"release PR #{pr.number} was merged {when}, before its review deadline "
            f"{m.extra.get('deadline') or '(none)'}"
        )
    approvers = approvers_of(policy, pr, forge.reviews(pr.number))
    need = policy.approvals.required
    if len(approvers) < need:
        out.append(
            f"release PR #{pr.number}: {len(approvers)}/{need} maintainer approvals on "
            f"{commit[:10]}"
        )
    checks = forge.checks(commit) if policy.checks.required else []
    for outcome in required_checks(policy, checks):
        if outcome.state != "passed":
            out.append(f"release PR #{pr.number}: {outcome.reason} on {commit[:10]}")
    return out
