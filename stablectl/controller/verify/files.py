"""A release's files as published: every file under the release's directory is listed in a
signed `SHA256SUMS` and matches it (hashes streamed); nothing else is there; the manifest names
the tag's commit and tag object, and its claims (which fixes, which CVEs) are recomputed from
upstream facts over the tag's range; with `--rebuild` every tarball on disk is rebuilt from the
tag and must match byte for byte."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pygit2

from stablectl.controller.gate import approvers_of
from stablectl.controller.identities import ci_checks, stablectl_prs
from stablectl.controller.verify.context import Audit
from stablectl.controller.verify.report import ReleaseAudit, SeriesAudit
from stablectl.controller.verify.tags import signed
from stablectl.errors import StablectlError
from stablectl.gitops.archive import build_tarballs, parse_sha256sums
from stablectl.gitops.messages import parse_message
from stablectl.gitops.signing import detached_signatures
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Series

SUMS = "SHA256SUMS"
SUM_SIGNATURES = detached_signatures(SUMS)
SIGSTORE_BUNDLE = f"{SUMS}.sigstore.json"
TARBALL_SUFFIXES = (".tar.xz", ".tgz", ".tar.gz", ".tar.bz2", ".zip")


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (a release asset can be larger than memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def audit_files(a: Audit, series: Series, audit: SeriesAudit, entry: ReleaseAudit) -> None:
    if a.releases_dir is None or entry.commit is None:
        return
    directory = a.releases_dir / entry.tag
    name, tag = series.name, entry.tag
    if not directory.is_dir():
        # Fail closed: a mistyped download path must not pass an audit.
        a.find(
            "error",
            name,
            tag,
            f"no release files for {tag} in {directory} (looked for {directory}/{SUMS}): "
            "download the release there, point --releases at the directory holding "
            f"{tag}/, or audit commits alone with --commits-only",
        )
        return
    sums_path = directory / SUMS
    if not sums_path.is_file():
        a.find("error", name, tag, f"{SUMS} is missing from {directory}")
        return
    sums = sums_path.read_bytes()
    signatures = [
        (str(directory / n), (directory / n).read_bytes())
        for n in SUM_SIGNATURES
        if (directory / n).is_file()
    ]
    entry.sums_signed_by = signed(a, series, f"{tag}/{SUMS}", sums, signatures, namespace="file")
    listed = parse_sha256sums(sums.decode("utf-8", "replace"))
    entry.sigstore_bundle = (directory / SIGSTORE_BUNDLE).is_file()
    # Every entry under the directory, at any depth: only SHA256SUMS, its signatures and the
    # Sigstore bundle (checked with `python -m sigstore verify`, not offline) go unlisted.
    unlisted_ok = {SUMS, SIGSTORE_BUNDLE, *SUM_SIGNATURES}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if p.is_dir():
            a.find("error", name, str(p), "a directory inside a release: nothing may hide there")
        elif not p.is_file():
            a.find("error", name, str(p), "not a regular file")
        elif rel not in listed and rel not in unlisted_ok:
            a.find("error", name, str(p), f"an extra file {SUMS} does not list")
    checked = 0
    for fname, digest in sorted(listed.items()):
        path = directory / fname
        if "/" in fname or fname in unlisted_ok or not path.is_file():
            a.find("error", name, str(path), f"listed in {SUMS} but missing")
            continue
        got = file_sha256(path)
        checked += 1
        if got != digest:
            a.find(
                "error",
                name,
                str(path),
                f"SHA-256 {got} does not match {SUMS}'s {digest}: the file was changed",
            )
    entry.artifacts_checked = checked
    manifest_path = directory / "manifest.json"
    if "manifest.json" not in listed or not manifest_path.is_file():
        a.find("error", name, tag, f"no manifest.json listed in {SUMS}")
        return
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        a.find("error", name, tag, f"manifest.json is not JSON: {e}")
        return
    entry.manifest = str(manifest_path)
    _manifest(a, series, audit, entry, manifest, listed)


def _manifest(
    a: Audit,
    series: Series,
    audit: SeriesAudit,
    entry: ReleaseAudit,
    manifest: JSONDoc,
    listed: dict[str, str],
) -> None:
    name, tag = series.name, entry.tag
    if manifest.get("commit") != entry.commit:
        a.find(
            "error",
            name,
            tag,
            f"the manifest names commit {manifest.get('commit')}, the tag {entry.commit}",
        )
    if manifest.get("tag_object") not in (None, entry.tag_object):
        a.find(
            "error",
            name,
            tag,
            f"the manifest names tag object {manifest.get('tag_object')}, the mirror's {tag} is "
            f"{entry.tag_object}",
        )
    for art in manifest.get("artifacts", []):
        if listed.get(art.get("name")) not in (None, art.get("sha256")):
            a.find(
                "error",
                name,
                art.get("name", "?"),
                f"the manifest and {SUMS} disagree on its SHA-256",
            )
    claims(a, series, audit, entry, manifest)
    review_claims(a, series, entry, manifest)


def review_claims(a: Audit, series: Series, entry: ReleaseAudit, manifest: JSONDoc) -> None:
    """With a readable forge, the manifest's `review` and `tested` are the forge's facts: the
    approvers it names approved the release PR at the tagged commit, and the checks it names
    passed on that commit."""
    forge = a.readable_forge
    if forge is None or entry.commit is None:
        return
    name, tag, commit = series.name, entry.tag, entry.commit
    tested = manifest.get("tested") or {}
    if tested.get("commit") not in (None, commit):
        a.find(
            "error",
            name,
            tag,
            f"the manifest's tested commit is {tested.get('commit')}, not {commit}",
        )
    try:
        green = {c.name for c in ci_checks(a.policy, forge.checks(commit)) if c.ok}
        prs = [
            p
            for p in stablectl_prs(a.policy, forge, "all")
            if p.state == "merged"
            and p.head_sha == commit
            and p.marker is not None
            and p.marker.kind == "release"
        ]
        approvers = (
            set(approvers_of(a.policy, prs[-1], forge.reviews(prs[-1].number))) if prs else set()
        )
    except StablectlError as e:
        a.find("error", name, tag, f"cannot read the release's review and checks: {e}")
        return
    for check in tested.get("checks") or []:
        if (
            check.get("conclusion") in ("success", "neutral", "skipped")
            and check.get("name") not in green
        ):
            a.find(
                "error",
                name,
                tag,
                f"the manifest says check {check.get('name')!r} passed on {commit[:10]}; the "
                "forge shows no such green check",
            )
    claimed = {str(x).lower() for x in (manifest.get("review") or {}).get("approvers") or []}
    for user in sorted(claimed - approvers):
        a.find(
            "error",
            name,
            tag,
            f"the manifest names {user} as an approver of the release; the forge shows no such "
            f"approval of {commit[:10]}",
        )


def claims(
    a: Audit, series: Series, audit: SeriesAudit, entry: ReleaseAudit, manifest: JSONDoc
) -> None:
    """The manifest's fix list is exactly the changes the tag's range brings (none missing,
    none extra), and each CVE it claims is backed by an upstream fact: the message of the
    upstream commit the fix reproduces (or of the original that commit names), or the
    advisory database the policy reads."""
    name, tag = series.name, entry.tag
    assert entry.commit is not None
    shipped = audit.released_commits.get(entry.commit, [])
    fixes = [f for f in manifest.get("fixes", []) if isinstance(f, dict)]
    claimed = [str(f.get("commit")) for f in fixes]
    for sha in shipped:
        if sha not in claimed:
            a.find("error", name, tag, f"the manifest omits {sha[:12]}, which the release brings")
    for f in fixes:
        sha = str(f.get("commit"))
        if sha not in shipped:
            a.find(
                "error",
                name,
                tag,
                f"the manifest lists {sha[:12]} ({f.get('subject', '')!r}), which is not in the "
                "release's range",
            )
            continue
        backed = upstream_cves(a, series, sha)
        for cve in f.get("cves") or []:
            if cve not in backed:
                a.find(
                    "error",
                    name,
                    tag,
                    f"the manifest claims {cve} for {sha[:12]}, which no upstream fact backs "
                    "(upstream's message, the advisory database)",
                )


def upstream_cves(a: Audit, series: Series, sha: str) -> set[str]:
    """The CVE ids upstream facts give a stable commit: from the upstream commit it reproduces
    and the originals that one names (their messages), and from the advisory databases."""
    prov = a.provenance(series)
    r = prov.explain(sha)
    if r.source is None or r.origin != "upstream":
        return set()
    shas = [r.source]
    info = parse_message(a.repo[pygit2.Oid(hex=r.source)].peel(pygit2.Commit).message)
    out = set(info.cves)
    for named in info.cherry_picked_from:
        full, origin = prov.resolve(named)
        if full is not None and origin == "upstream":
            shas.append(full)
            out |= set(parse_message(a.repo[pygit2.Oid(hex=full)].peel(pygit2.Commit).message).cves)
    for idx in a.ws.advisories().values():
        for s in shas:
            for adv in idx.fixed.get(s, []):
                out |= {x for x in (adv.id, *adv.aliases) if x.startswith("CVE-")}
    return out


def rebuild(a: Audit, series: Series, entry: ReleaseAudit) -> None:
    """Build the tarballs again from the tag; every tarball on disk must be one of them, byte
    for byte."""
    if not entry.manifest or entry.commit is None:
        return
    manifest = json.loads(Path(entry.manifest).read_text())
    stem = a.policy.release.tarball.format(project=a.policy.project, version=manifest["version"])
    with tempfile.TemporaryDirectory(prefix="stablectl-verify-") as tmp:
        built = {
            x.path.name: x.sha256 for x in build_tarballs(a.repo, entry.commit, stem, Path(tmp))
        }
    entry.rebuilt = sorted(built)
    directory = Path(entry.manifest).parent
    on_disk = {
        p.name: file_sha256(p)
        for p in directory.iterdir()
        if p.is_file() and p.name.endswith(TARBALL_SUFFIXES) and ".patches." not in p.name
    }
    want = {x["name"]: x["sha256"] for x in manifest.get("artifacts", [])}
    for fname in sorted(set(on_disk) | {n for n in want if n in built}):
        digest = on_disk.get(fname) or want.get(fname)
        if fname not in built:
            a.find(
                "error",
                series.name,
                entry.tag,
                f"{fname} is not a tarball this tag builds (it builds {', '.join(sorted(built))})",
            )
        elif built[fname] != digest or (fname in want and want[fname] != built[fname]):
            a.find(
                "error",
                series.name,
                entry.tag,
                f"{fname} rebuilt from the tag has SHA-256 {built[fname]}, the release has "
                f"{digest}: not what this commit produces",
            )
