"""`stablectl verify`: a provenance audit of the mirror, runnable by anyone with read access and
no memory of earlier runs (docs/security.md says what it proves against whom).

For each series, after fetching upstream and the mirror into the cache:

- the stable branch descends from its base tag and is linear; when this machine verified it
  before (`STATE/verify-known.json`), it must fast-forward that state (an extra check, not the
  only one);
- every commit after the base is a backport naming, by its `(cherry picked from commit …)`
  trailer, a commit upstream has (on an upstream branch or tag; a commit of the series' patch
  queue is accepted as a *downstream patch* and listed as such), whose patch it equals, or from
  which it is adapted *as recorded* in its `Stablectl-Adapted:` trailer (the size must match,
  and the PR it names must carry a maintainer's approval): an unrecorded difference is an error;
  release commits (`Stablectl-Release:`) change no file, infrastructure commits
  (`Stablectl-Infrastructure:`) only `.github/`;
- release commits and release tags match one to one, numbered 1, 2, … along the branch; each
  tag is annotated, carries its own name, points at its release commit, and names the previous
  release's tag object (the base tag's for the first): the signed tags form a hash chain, the
  mirror's release log, replayed here against the branch. With pinned keys
  (`release.signing`, `--allowed-signers`, `--keyring`) every tag's signature must verify;
- where the release's files are at hand (`--releases DIR/<tag>/`, default the state
  directory's), `SHA256SUMS` lists every file there and nothing is missing, extra or changed,
  its signature verifies against the pinned keys, and the manifest names the tag's commit; with
  `--rebuild` the tarballs are rebuilt from the tag and must match byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pygit2

from stablectl.controller.plan import Engine
from stablectl.controller.release import (
    COMMIT_TRAILER,
    PREVIOUS_TRAILER,
    release_trailer_version,
    tag_chain,
    tag_of,
)
from stablectl.errors import GitError, StablectlError
from stablectl.forge.base import Forge
from stablectl.gitops.archive import build_tarballs, parse_sha256sums
from stablectl.gitops.messages import RELEASE_TRAILER, adapted_of, parse_message
from stablectl.gitops.objects import Provenance, adaptation, first_parent_diff
from stablectl.gitops.signing import (
    Trust,
    check_signature,
    detached_signatures,
    split_signed_tag,
)
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Policy, Series

SUMS = "SHA256SUMS"
SUM_SIGNATURES = detached_signatures(SUMS)

Level = Literal["error", "warning"]
KNOWN_STATE = "verify-known.json"


@dataclass(frozen=True)
class Finding:
    level: Level
    series: str
    subject: str  # a commit SHA, a tag, or a file
    what: str


@dataclass
class SeriesAudit:
    series: str
    branch: str
    base: str | None = None
    tip: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    adapted: list[JSONDoc] = field(default_factory=list)
    releases: list[JSONDoc] = field(default_factory=list)


@dataclass
class VerifyReport:
    remote: str
    audits: list[SeriesAudit] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    log_entries: int | None = None  # releases replayed from a release log, if one was given

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_json(self) -> JSONDoc:
        return {
            "schema": "stablectl.verify/1",
            "remote": self.remote,
            "ok": self.ok,
            "series": [
                {
                    "series": a.series,
                    "branch": a.branch,
                    "base": a.base,
                    "tip": a.tip,
                    "counts": dict(a.counts),
                    "adapted": a.adapted,
                    "releases": a.releases,
                }
                for a in self.audits
            ],
            "release_log_entries": self.log_entries,
            "findings": [f.__dict__ for f in self.findings],
        }


class Verifier:
    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        releases_dir: Path | None,
        *,
        trust: Trust | None = None,
        forge: Forge | str | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.repo = engine.cache.repo
        self.releases_dir = releases_dir
        self.trust = trust or Trust()
        self.forge = forge  # a forge to read PR reviews from, or why there is none
        self.report = VerifyReport(policy.fork.git)
        self.provenance = Provenance(self.repo, queue_refs(policy))

    def _find(self, level: Level, series: str, subject: str, what: str) -> None:
        self.report.findings.append(Finding(level, series, subject, what))

    # -------------------------------------------------------------------- branch

    def audit(self, series: Series, known: dict[str, str], *, tags: bool = True) -> SeriesAudit:
        """The series' branch, commit by commit, then (`tags`) its releases."""
        repo, name = self.repo, series.name
        audit = SeriesAudit(name, series.stable_branch)
        base = self.engine.cache.upstream_tag(series.base)
        tip = self.engine.cache.fork_branch(series.stable_branch)
        audit.base, audit.tip = base, tip
        if base is None:
            self._find("error", name, series.base, "the base tag is not upstream")
            return audit
        if tip is None:
            self._find("error", name, series.stable_branch, "the mirror has no such branch")
            return audit
        if tip != base and not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=base)):
            self._find("error", name, tip, f"the branch does not descend from {series.base}")
            return audit
        was = known.get(f"branch:{series.stable_branch}")
        if (
            was
            and was != tip
            and (
                was not in repo or not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=was))
            )
        ):
            self._find(
                "error",
                name,
                tip,
                f"REWRITTEN: {series.stable_branch} was {was} when last verified and "
                f"{tip} is not a fast-forward of it (history was rewritten)",
            )
        released = self.commits(series, base, pygit2.Oid(hex=tip), base, audit)
        if tags:
            self._tags(series, audit, tip, known, released)
        return audit

    def commits(
        self,
        series: Series,
        base: str | None,
        head: pygit2.Oid,
        since: str | None,
        audit: SeriesAudit | None = None,
    ) -> list[tuple[str, str]]:
        """Check each commit of since..head, oldest first; returns the release commits met,
        as (version, commit)."""
        audit = audit or SeriesAudit(series.name, series.stable_branch, base=base)
        walker = self.repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)
        if since is not None:
            walker.hide(pygit2.Oid(hex=since))
        released = []
        for c in reversed(list(walker)):
            version = self._commit(series, audit, c)
            if version is not None:
                released.append((version, str(c.id)))
        return released

    def _commit(self, series: Series, audit: SeriesAudit, c: pygit2.Commit) -> str | None:
        """Check one commit after the base; a release commit's version is returned."""
        name, sha, msg = series.name, str(c.id), c.message
        subject = msg.splitlines()[0] if msg else ""
        audit.counts["commits"] += 1
        if len(c.parents) != 1:
            self._find("error", name, sha, "a merge commit: stable branches are linear")
            return None
        paths = [
            p
            for d in first_parent_diff(c).deltas
            for p in dict.fromkeys((d.old_file.path, d.new_file.path))
        ]
        version = release_trailer_version(msg)
        if version is not None:
            audit.counts["release commits"] += 1
            if paths:
                self._find("error", name, sha, f"a release commit that changes files: {paths}")
            return version
        if re.search(r"^Stablectl-Infrastructure:", msg, re.M):
            audit.counts["infrastructure commits"] += 1
            outside = [p for p in paths if not p.startswith(".github/")]
            if outside:
                self._find("error", name, sha, f"infrastructure commit touches {outside}")
            return None
        named = parse_message(msg).cherry_picked_from
        if not named:
            same = self._same_patch_upstream(c, paths, audit.base or "")
            if same is None:
                self._find(
                    "error", name, sha, f"no provenance: {subject!r} names no upstream commit"
                )
                return None
            audit.counts["backports"] += 1
            audit.counts["identical"] += 1
            audit.counts["matched by patch-id"] += 1
            self._find(
                "warning",
                name,
                sha,
                f"no trailer, but the same patch as upstream {same} (a backport by hand)",
            )
            return None
        source_sha = named[-1]
        try:
            source = self.repo.revparse_single(source_sha).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            source = None
        origin = self.provenance.origin(str(source.id)) if source is not None else None
        if origin is None or source is None:
            self._find(
                "error",
                name,
                sha,
                f"names {source_sha} which upstream does not have (a forged or stale trailer, "
                "or a patch queue commit presented as upstream?)",
            )
            return None
        if origin == "patch-queue":
            # A patch of the series' queue (a distribution's own backport, say): accepted as
            # what it is, and listed, never counted as upstream's.
            audit.counts["downstream patches"] += 1
            self._find(
                "warning",
                name,
                sha,
                f"from the series' patch queue ({series.patches}), not upstream: {subject!r}",
            )
        audit.counts["backports"] += 1
        size = adaptation(c, source)
        recorded = adapted_of(msg)
        if size == 0 and recorded is None:
            audit.counts["identical"] += 1
            return None
        audit.counts["adapted"] += 1
        entry: JSONDoc = {
            "commit": sha,
            "source": str(source.id),
            "lines": size,
            "subject": subject,
            "origin": origin,
            "pr": recorded.pr if recorded else None,
            "recorded": recorded is not None,
        }
        audit.adapted.append(entry)
        if recorded is None:
            self._find(
                "error",
                name,
                sha,
                f"a mirror-only change: differs from {str(source.id)[:12]} by {size} lines and "
                "records no adaptation (Stablectl-Adapted: trailer, from `stablectl backport "
                "--continue`)",
            )
            return None
        if not str(source.id).startswith(recorded.source):
            self._find(
                "error",
                name,
                sha,
                f"records an adaptation of {recorded.source[:12]}, but is a backport of "
                f"{str(source.id)[:12]}",
            )
        elif recorded.lines != size:
            self._find(
                "error",
                name,
                sha,
                f"records an adaptation of {recorded.lines} lines, but differs from "
                f"{str(source.id)[:12]} by {size}: changed after review",
            )
        self._reviewed(series, sha, recorded.pr, entry)
        return None

    def _reviewed(self, series: Series, sha: str, pr: int | None, entry: JSONDoc) -> None:
        """A recorded adaptation names the PR where a maintainer approved it: check that."""
        if pr is None:
            self._find("error", series.name, sha, "records an adaptation but no reviewing PR")
            return
        if not isinstance(self.forge, Forge):
            self._find(
                "warning",
                series.name,
                sha,
                f"adaptation reviewed in #{pr}: not checked ({self.forge or 'no forge'})",
            )
            return
        maint = {m.lower() for m in self.policy.maintainers}
        try:
            reviews = self.forge.reviews(pr)
        except StablectlError as e:
            self._find("error", series.name, sha, f"cannot read the reviews of #{pr}: {e}")
            return
        approvers = sorted({r.user.lower() for r in reviews if r.state == "APPROVED"} & maint)
        entry["approvers"] = approvers
        if not approvers:
            self._find(
                "error",
                series.name,
                sha,
                f"records an adaptation reviewed in #{pr}, which no maintainer approved",
            )

    def _same_patch_upstream(self, c: pygit2.Commit, paths: list[str], base: str) -> str | None:
        """An upstream commit (after the base) with the same patch-id, looked for among the
        commits touching the same paths."""
        if not paths:
            return None
        proc = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.engine.cache.path),
                "log",
                "--format=%H",
                "--no-merges",
                "--remotes=upstream",
                "--not",
                base,
                "--",
                *paths,
            ],
            capture_output=True,
            text=True,
        )
        want = str(first_parent_diff(c).patchid)
        for sha in proc.stdout.split():
            other = self.repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit)
            if len(other.parents) == 1 and str(first_parent_diff(other).patchid) == want:
                return sha
        return None

    # -------------------------------------------------------------------- releases

    def _tags(
        self,
        series: Series,
        audit: SeriesAudit,
        tip: str,
        known: dict[str, str],
        released: list[tuple[str, str]],
    ) -> None:
        """Release commits and tags one to one, numbered 1, 2, …; every tag annotated, named as
        its ref, on its release commit, naming the previous release's tag object (the chain),
        signed by a pinned key when keys are pinned."""
        repo, name = self.repo, series.name
        tags = []
        n = 1
        while (ref := repo.references.get(f"refs/fork-tags/{tag_of(self.policy, series, n)}")) or (
            n <= len(released)
        ):
            tags.append((n, tag_of(self.policy, series, n), ref))
            n += 1
        previous = (series.base, self.engine.cache.resolve(f"refs/tags/{series.base}"))
        for n, tag, ref in tags:
            version = f"{series.name}.{n}"
            commit_of_n = released[n - 1][1] if n <= len(released) else None
            if commit_of_n is not None and released[n - 1][0] != version:
                self._find(
                    "error",
                    name,
                    commit_of_n,
                    f"release commit number {n} on the branch names version "
                    f"{released[n - 1][0]}, not {version}: releases are numbered in order",
                )
            if ref is None:
                self._find(
                    "error",
                    name,
                    tag,
                    f"no tag for the release commit {commit_of_n}: the tag was deleted, or the "
                    "release run has not finished (`stablectl sync` tags it)",
                )
                previous = (tag, None)
                continue
            entry = self._tag(
                series, tag, version, pygit2.Oid(hex=str(ref.target)), tip, previous, known
            )
            audit.releases.append(entry)
            if commit_of_n is None:
                self._find(
                    "error",
                    name,
                    tag,
                    f"a tag without a release commit on {series.stable_branch}: "
                    f"{series.stable_branch} has {len(released)} releases",
                )
            elif entry.get("commit") != commit_of_n:
                self._find(
                    "error",
                    name,
                    tag,
                    f"points at {entry.get('commit')}, not at release commit {n} ({commit_of_n})",
                )
            previous = (tag, str(ref.target))
            self._artifacts(series, tag, str(entry.get("commit")), entry)

    def _tag(
        self,
        series: Series,
        tag: str,
        version: str,
        target: pygit2.Oid,
        tip: str,
        previous: tuple[str, str | None],
        known: dict[str, str],
    ) -> JSONDoc:
        repo, name = self.repo, series.name
        obj = repo[target]
        entry: JSONDoc = {
            "tag": tag,
            "tag_object": str(target),
            "annotated": obj.type == pygit2.enums.ObjectType.TAG,
            "signed_by": None,
        }
        commit = obj.peel(pygit2.Commit)
        entry["commit"] = str(commit.id)
        was = known.get(f"tag:{tag}")
        if was and was != str(target):
            self._find("error", name, tag, f"MOVED: was {was} when last verified")
        if not (str(commit.id) == tip or repo.descendant_of(pygit2.Oid(hex=tip), commit.id)):
            self._find("error", name, tag, f"points at {commit.id} off {series.stable_branch}")
        if release_trailer_version(commit.message) != version:
            self._find("error", name, tag, "does not point at the release commit of its version")
        if not entry["annotated"]:
            self._find("error", name, tag, "a lightweight tag: release tags are annotated")
            return entry
        assert isinstance(obj, pygit2.Tag)
        if obj.name != tag:
            self._find(
                "error", name, tag, f"the tag object is {obj.name!r}'s: a tag moved to this name"
            )
        chain = tag_chain(obj.message or "")
        entry["previous"] = chain.get(PREVIOUS_TRAILER)
        want_prev = f"{previous[0]} {previous[1]}"
        if chain.get(RELEASE_TRAILER) != version or chain.get(COMMIT_TRAILER) != str(commit.id):
            self._find(
                "error",
                name,
                tag,
                f"its message does not name version {version} and commit {commit.id} "
                f"({RELEASE_TRAILER}:, {COMMIT_TRAILER}:)",
            )
        elif previous[1] is not None and chain.get(PREVIOUS_TRAILER) != want_prev:
            self._find(
                "error",
                name,
                tag,
                f"the release log breaks: it names {chain.get(PREVIOUS_TRAILER)!r} as the "
                f"previous release, the mirror has {want_prev}",
            )
        self._signature(series, tag, target, entry)
        return entry

    def _signature(self, series: Series, tag: str, target: pygit2.Oid, entry: JSONDoc) -> None:
        _kind, raw = self.repo.odb.read(target)
        payload, signature = split_signed_tag(bytes(raw))
        signatures = [(tag, signature)] if signature is not None else []
        entry["signed_by"] = self._signed(series, tag, payload, signatures, namespace="git")

    def _signed(
        self,
        series: Series,
        what: str,
        payload: bytes,
        signatures: list[tuple[str, bytes]],
        *,
        namespace: str,
    ) -> str | None:
        """Who signed `payload` (each signature as (where it is, its bytes)), checked against
        the pinned keys; an unsigned or unverifiable payload is reported as the trust
        requires."""
        if not signatures:
            if self.trust.required or self.trust.pinned:
                self._find("error", series.name, what, "UNSIGNED, but signatures are required")
            return None
        if not self.trust.pinned:
            level: Level = "error" if self.trust.required else "warning"
            self._find(level, series.name, what, "signed, but no key is pinned to check it")
            return None
        signer = None
        for where, signature in signatures:
            try:
                signer = check_signature(payload, signature, self.trust, namespace=namespace)
            except GitError as e:
                self._find("error", series.name, where, f"signature: {e}")
        return signer

    def _artifacts(self, series: Series, tag: str, commit: str, entry: JSONDoc) -> None:
        """The release's files as published: SHA256SUMS lists each of them (nothing missing,
        extra or changed), its signature verifies, and the manifest names the tag's commit."""
        if self.releases_dir is None:
            return
        directory = self.releases_dir / tag
        name = series.name
        if not directory.is_dir():
            entry["manifest"] = None
            self._find("warning", name, tag, f"no release files in {directory} to check")
            return
        sums_path = directory / SUMS
        if not sums_path.is_file():
            entry["manifest"] = None
            self._find("error", name, tag, f"{SUMS} is missing from {directory}")
            return
        sums = sums_path.read_bytes()
        signatures = [
            (str(directory / n), (directory / n).read_bytes())
            for n in SUM_SIGNATURES
            if (directory / n).is_file()
        ]
        entry["sums_signed_by"] = self._signed(
            series, f"{tag}/{SUMS}", sums, signatures, namespace="file"
        )
        listed = parse_sha256sums(sums.decode("utf-8", "replace"))
        # SHA256SUMS and its signatures (.sig, .asc; Actions adds a Sigstore bundle,
        # SHA256SUMS.sigstore.json, checked with `python -m sigstore verify`, not offline).
        present = {
            p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(SUMS)
        }
        entry["sigstore_bundle"] = (directory / f"{SUMS}.sigstore.json").is_file()
        checked = 0
        for fname in sorted(present - set(listed)):
            self._find("error", name, str(directory / fname), f"an extra file {SUMS} does not list")
        for fname, digest in sorted(listed.items()):
            path = directory / fname
            if "/" in fname or not path.is_file():
                self._find("error", name, str(path), f"listed in {SUMS} but missing")
                continue
            got = hashlib.sha256(path.read_bytes()).hexdigest()
            checked += 1
            if got != digest:
                self._find(
                    "error",
                    name,
                    str(path),
                    f"SHA-256 {got} does not match {SUMS}'s {digest}: the file was changed",
                )
        entry["artifacts_checked"] = checked
        manifest_path = directory / "manifest.json"
        if "manifest.json" not in listed or not manifest_path.is_file():
            entry["manifest"] = None
            self._find("error", name, tag, f"no manifest.json listed in {SUMS}")
            return
        manifest = json.loads(manifest_path.read_text())
        entry["manifest"] = str(manifest_path)
        if manifest.get("commit") != commit:
            self._find(
                "error",
                name,
                tag,
                f"the manifest names commit {manifest.get('commit')}, the tag {commit}",
            )
        if manifest.get("tag_object") not in (None, entry.get("tag_object")):
            self._find(
                "error",
                name,
                tag,
                f"the manifest names tag object {manifest.get('tag_object')}, the mirror's "
                f"{tag} is {entry.get('tag_object')}",
            )
        for art in manifest.get("artifacts", []):
            if listed.get(art.get("name")) not in (None, art.get("sha256")):
                self._find(
                    "error",
                    name,
                    art.get("name", "?"),
                    f"the manifest and {SUMS} disagree on its SHA-256",
                )

    def replay_log(self, log: JSONDoc, series: list[Series]) -> None:
        """Replay a published release log (`releases.json`, kept by the downstream or fetched from
        the mirror's feed) against the mirror: every release it lists must still be there, with
        the same tag object and commit, numbered in order, each following the one before. This is
        what catches a rollback (the newest release and its commit removed), which a first run
        cannot see from the mirror alone."""
        if log.get("schema") != "stablectl.releases/1":
            self._find(
                "error", "-", "release log", f"not a stablectl release log: {log.get('schema')}"
            )
            return
        wanted = {s.name: s for s in series}
        last: dict[str, tuple[int, str | None]] = {}
        for entry in log.get("releases", []):
            s = wanted.get(str(entry.get("series")))
            if s is None:
                continue
            tag = str(entry.get("tag"))
            n = int(str(entry.get("version", "")).rsplit(".", 1)[-1] or 0)
            prev_n, prev_commit = last.get(s.name, (0, None))
            if n != prev_n + 1:
                self._find(
                    "error",
                    s.name,
                    tag,
                    f"the release log jumps from release {prev_n} to {n}: a gap",
                )
            previous = (entry.get("previous") or {}).get("commit")
            if prev_commit is not None and previous != prev_commit:
                self._find(
                    "error",
                    s.name,
                    tag,
                    f"the release log forks: it follows {previous}, the release before is "
                    f"{prev_commit}",
                )
            last[s.name] = (n, entry.get("commit"))
            ref = self.repo.references.get(f"refs/fork-tags/{tag}")
            if ref is None:
                self._find(
                    "error",
                    s.name,
                    tag,
                    f"the release log lists {tag} (commit {entry.get('commit')}), which the mirror "
                    "no longer has: deleted, or the fork was rewound",
                )
                continue
            if str(ref.target) != entry.get("tag_object"):
                self._find(
                    "error",
                    s.name,
                    tag,
                    f"MOVED: the release log has tag object {entry.get('tag_object')}, the mirror "
                    f"{ref.target}",
                )
            commit = str(self.repo[ref.target].peel(pygit2.Commit).id)
            if commit != entry.get("commit"):
                self._find(
                    "error",
                    s.name,
                    tag,
                    f"the release log has commit {entry.get('commit')}, the mirror's tag {commit}",
                )
        self.report.log_entries = sum(
            1 for e in log.get("releases", []) if e.get("series") in wanted
        )

    def rebuild(self, series: Series, entry: JSONDoc) -> None:
        """Build the tarballs again from the tag and compare with the manifest."""
        if not entry.get("manifest"):
            return
        manifest = json.loads(Path(entry["manifest"]).read_text())
        stem = self.policy.release.tarball.format(
            project=self.policy.project, version=manifest["version"]
        )
        with tempfile.TemporaryDirectory(prefix="stablectl-verify-") as tmp:
            built = {
                a.path.name: a.sha256
                for a in build_tarballs(self.repo, entry["commit"], stem, Path(tmp))
            }
        want = {a["name"]: a["sha256"] for a in manifest.get("artifacts", [])}
        entry["rebuilt"] = sorted(built)
        for name_, digest in want.items():
            if name_ in built and built[name_] != digest:
                self._find(
                    "error",
                    series.name,
                    entry["tag"],
                    f"{name_} rebuilt from the tag has SHA-256 {built[name_]}, the manifest "
                    f"says {digest}: not what this commit produces",
                )


def queue_refs(policy: Policy) -> tuple[str, ...]:
    """The cache refs of the policy's patch queues."""
    return tuple(f"refs/remotes/upstream/{s.queue_branch}" for s in policy.series if s.queue_branch)


def release_blockers(engine: Engine, policy: Policy, series: Series, forge: Forge) -> list[str]:
    """What `verify` would reject on the stable branch's commits (a mirror-only change, a
    forged trailer, an unapproved adaptation, a merge): sync neither proposes nor tags a
    release on top of it, so nothing is published that a downstream's check would refuse."""
    v = Verifier(engine, policy, None, forge=forge)
    v.audit(series, {}, tags=False)
    return [f"{f.subject[:12]}: {f.what}" for f in v.report.findings if f.level == "error"]


def merge_blockers(
    engine: Engine, policy: Policy, series: Series, forge: Forge, head: str
) -> list[str]:
    """What verify would reject among the commits a PR would bring onto the stable branch (an
    unrecorded or mis-recorded adaptation, a trailer naming nothing upstream has): sync does
    not merge it, so the stable branch never holds what a downstream's check refuses."""
    cache = engine.cache
    repo = cache.repo
    tip = cache.fork_branch(series.stable_branch)
    try:
        head_commit = repo[pygit2.Oid(hex=head)].peel(pygit2.Commit)
    except (KeyError, ValueError):
        return [f"{head[:10]} is not in the cache (fetch the fork)"]
    v = Verifier(engine, policy, None, forge=forge)
    v.commits(series, cache.upstream_tag(series.base), head_commit.id, tip)
    return [f"{f.subject[:12]}: {f.what}" for f in v.report.findings if f.level == "error"]


def known_state_path(state_dir: Path) -> Path:
    return state_dir / KNOWN_STATE


def load_known(state_dir: Path, remote: str) -> dict[str, str]:
    path = known_state_path(state_dir)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get(remote, {}))


def save_known(state_dir: Path, remote: str, report: VerifyReport, repo: pygit2.Repository) -> None:
    """Record what was verified (only after a clean verify): the next run compares with it."""
    path = known_state_path(state_dir)
    data = json.loads(path.read_text()) if path.is_file() else {}
    mine = dict(data.get(remote, {}))
    for a in report.audits:
        if a.tip:
            mine[f"branch:{a.branch}"] = a.tip
        for r in a.releases:
            ref = repo.references.get(f"refs/fork-tags/{r['tag']}")
            if ref is not None:
                mine[f"tag:{r['tag']}"] = str(ref.target)
    data[remote] = mine
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def verify(
    engine: Engine,
    policy: Policy,
    series: list[Series],
    *,
    releases_dir: Path | None,
    rebuild: bool = False,
    record: bool = True,
    trust: Trust | None = None,
    forge: Forge | str | None = None,
    release_log: JSONDoc | None = None,
) -> VerifyReport:
    remote = policy.fork.git
    known = load_known(engine.state_dir, remote)
    v = Verifier(engine, policy, releases_dir, trust=trust, forge=forge)
    for s in series:
        audit = v.audit(s, known)
        v.report.audits.append(audit)
        if rebuild:
            for entry in audit.releases:
                v.rebuild(s, entry)
    if release_log is not None:
        v.replay_log(release_log, series)
    if record and v.report.ok:
        save_known(engine.state_dir, remote, v.report, engine.cache.repo)
    return v.report
