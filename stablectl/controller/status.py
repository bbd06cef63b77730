"""What downstreams read: the state of every series as data (`status.json`), an Atom feed of
releases and security backports, and a static status page with a CVE lookup.

Everything comes from what anyone can see: the plan (flagged fixes still pending and whether
they pick cleanly), the mirror's stable branches and release tags, the PRs stablectl opened
(their CI state), and the release manifests. `stablectl feed` writes the three files; `sync`
rewrites them after each release when `release.feed` is set; `stablectl status` prints the same
picture in the terminal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2

from stablectl import __version__
from stablectl.controller.identities import stablectl_prs
from stablectl.controller.plan import Plan, PlannedFix, SeriesPlan
from stablectl.controller.release_history import (
    ReleaseCommit,
    ShippedFix,
    iso_time,
    scan_series,
    tag_of,
)
from stablectl.controller.release_key import policy_trust, review_deadline
from stablectl.controller.selection import FixState
from stablectl.controller.vex import VEX_NAME, vex_document
from stablectl.forge.base import CheckState, Forge, PullRequest
from stablectl.gitops.archive import parse_sha256sums
from stablectl.gitops.signing import (
    Trust,
    check_signed_file,
    detached_signatures,
    sign_file,
    signing_key_from_env,
)
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Policy, Series
from stablectl.templates import render_markup

SCHEMA = "stablectl.status/1"


def ci_state(checks: list[CheckState]) -> str:
    if not checks:
        return "none"
    if any(c.failed for c in checks):
        return "failure"
    if all(c.ok for c in checks):
        return "success"
    return "pending"


def _pr_json(pr: PullRequest | None, forge: Forge | None) -> JSONDoc | None:
    if pr is None:
        return None
    checks = forge.checks(pr.head_sha) if forge is not None and pr.state == "open" else []
    return {
        "number": pr.number,
        "url": pr.url,
        "state": pr.state,
        "draft": pr.draft,
        "ci": ci_state(checks) if pr.state == "open" else None,
    }


@dataclass(frozen=True)
class _Sources:
    """What each series' status is read from besides its plan."""

    policy: Policy
    repo: pygit2.Repository
    prs: dict[tuple[str, str], PullRequest]  # (series, fix key) -> its PR (open first)
    forge: Forge | None
    releases_dir: Path
    release_prs: dict[str, PullRequest]  # series -> its open release PR


def _series(src: _Sources, sp: SeriesPlan, tip: str) -> JSONDoc:
    s = sp.series
    sr = scan_series(src.repo, sp, tip)
    releases = [
        _release_json(src, s, n, rc, sr.shipped.get(rc.commit, []))
        for n, rc in enumerate(sr.releases, 1)
    ]
    merged: list[JSONDoc] = [
        {
            "subject": f.subject,
            "commit": f.commit,
            "original": f.original,
            "security": f.security,
            "cves": f.cves,
            "prerequisite_for": f.prerequisite_for,
            "follows": f.follows,
        }
        for f in sr.unreleased
    ]
    pending = [
        _pending_json(src, s, pf)
        for pf in sp.fixes
        if pf.candidate.state == FixState.PENDING
        and pf.status != FixState.NOT_APPLICABLE
        and not pf.status.done
    ]
    # Never dropped quietly: what does not concern the line is listed, with why.
    not_applicable: list[JSONDoc] = [
        {
            "subject": pf.candidate.fix.subject,
            "original": pf.candidate.fix.key,
            "security": pf.candidate.fix.security,
            "cves": list(pf.candidate.fix.cves),
            "reason": pf.why_not_affected,
            "evidence": list(pf.evidence),
            "verdict": pf.verdict,
            "searched": list(sp.selection.searched),
            "pr": _pr_json(src.prs.get((s.name, pf.candidate.fix.key)), src.forge),
        }
        for pf in sp.fixes
        if pf.not_affected
    ]
    return {
        "name": s.name,
        "branch": s.stable_branch,
        "base": {"tag": s.base, "commit": sp.selection.base_sha},
        "tip": tip,
        "eol": s.eol.isoformat() if s.eol else None,
        "pending": pending,
        "merged_unreleased": merged,
        "not_applicable": not_applicable,
        "releases": releases,
        "release_pr": _release_pr_json(src.policy, s, src.release_prs.get(s.name)),
        "cves": {
            "fixed": sorted({c for r in releases for c in r["cves"]}),
            "merged": sorted({c for f in merged for c in f["cves"]}),
            "pending": sorted({c for f in pending for c in f["cves"]}),
            "not_applicable": sorted({c for f in not_applicable for c in f["cves"]}),
        },
    }


def _release_json(
    src: _Sources, s: Series, n: int, rc: ReleaseCommit, shipped: list[ShippedFix]
) -> JSONDoc:
    """A release: its fixes and CVEs derived from the tag's range and upstream's messages (the
    same on a maintainer's state and on a downstream's fresh one), its files as its manifest
    and SHA256SUMS describe them (where sync built them), with its tag object and, where the
    forge has them, each file's download URL."""
    tag = tag_of(src.policy, s, n)
    directory = src.releases_dir / tag
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    fixes: list[JSONDoc] = []
    for f in shipped:
        pr = src.prs.get((s.name, f.original)) if f.original else None
        fixes.append(
            {
                "subject": f.subject,
                "commit": f.commit,
                "original": f.original,
                "security": f.security,
                "cves": list(f.cves),
                "pr": pr.url if pr is not None else None,
            }
        )
    ref = src.repo.references.get(f"refs/fork-tags/{tag}")
    published = src.forge.get_release(tag) if src.forge is not None else None
    urls = {a.name: a.url for a in published.assets} if published else {}
    sums = directory / "SHA256SUMS"
    digests = parse_sha256sums(sums.read_text()) if sums.is_file() else {}
    for own in (sums.name, *detached_signatures(sums.name)):
        if (directory / own).is_file():
            digests[own] = hashlib.sha256((directory / own).read_bytes()).hexdigest()
    files = {**{a["name"]: a["sha256"] for a in manifest.get("artifacts", [])}, **digests}
    return {
        "version": rc.version,
        "tag": tag,
        "tag_object": str(ref.target) if ref is not None else None,
        "commit": rc.commit,
        "previous": manifest.get("previous"),
        "date": iso_time(rc.time) if rc.time else None,
        "url": published.url if published else None,
        "fixes": fixes,
        "cves": sorted({c for f in fixes for c in f["cves"]}),
        "artifacts": manifest.get("artifacts", []),
        "files": [
            {"name": name, "sha256": files[name], "url": urls.get(name)} for name in sorted(files)
        ],
    }


def _release_pr_json(policy: Policy, s: Series, pr: PullRequest | None) -> JSONDoc | None:
    """The release under review: its PR, version and the deadline before which it is not
    merged (downstreams review it until then). The deadline is shown only where the release
    key vouches for it (keys pinned): a window edited in the PR body is none."""
    if pr is None or pr.marker is None:
        return None
    extra = pr.marker.extra
    deadline, _untrusted = review_deadline(policy_trust(policy), extra, s.name)
    if deadline is None:
        return None
    return {
        "number": pr.number,
        "url": pr.url,
        "version": extra.get("version"),
        "tag": extra.get("tag"),
        "commit": pr.head_sha,
        "deadline": extra.get("deadline"),
    }


def _pending_json(src: _Sources, s: Series, pf: PlannedFix) -> JSONDoc:
    fix = pf.candidate.fix
    return {
        "subject": fix.subject,
        "original": fix.key,
        "security": fix.security,
        "cves": list(fix.cves),
        "rules": sorted({h.rule for h in fix.flags}),
        "follows": fix.follows,
        "outcome": pf.status,
        "waits_for": pf.waits_for or None,
        "info": pf.info or None,
        "prerequisites": [
            {"commit": x.sha, "subject": x.subject, "where": list(x.where)}
            for x in pf.prerequisites
        ],
        "pr": _pr_json(src.prs.get((s.name, fix.key)), src.forge),
    }


def _prs_by_fix(
    policy: Policy,
    forge: Forge | None,
) -> tuple[dict[tuple[str, str], PullRequest], dict[str, PullRequest]]:
    """stablectl's backport PRs by (series, upstream original), an open one winning over
    closed ones for the same fix; each series' open release PR."""
    prs: dict[tuple[str, str], PullRequest] = {}
    release_prs: dict[str, PullRequest] = {}
    for pr in stablectl_prs(policy, forge, "all") if forge is not None else []:
        m = pr.marker
        if m is not None and m.kind == "release" and pr.state == "open":
            release_prs[m.series] = pr
        if m is not None and m.kind == "backport":
            key = (m.series, m.original)
            if key not in prs or pr.state == "open":
                prs[key] = pr
    return prs, release_prs


def _cves(series: list[JSONDoc]) -> dict[str, list[JSONDoc]]:
    """Every CVE the lines know, with its state per line: released (in which release), merged,
    pending (its PR), or not applicable (the reason)."""
    cves: dict[str, list[JSONDoc]] = {}
    for s in series:
        for r in s["releases"]:
            for c in r["cves"]:
                cves.setdefault(c, []).append(
                    {"series": s["name"], "state": "released", "release": r["tag"]}
                )
        for f in s["merged_unreleased"]:
            for c in f["cves"]:
                cves.setdefault(c, []).append({"series": s["name"], "state": "merged"})
        for f in s["pending"]:
            for c in f["cves"]:
                pr = f["pr"]
                cves.setdefault(c, []).append(
                    {"series": s["name"], "state": "pending", "pr": pr["url"] if pr else None}
                )
        for f in s["not_applicable"]:
            for c in f["cves"]:
                cves.setdefault(c, []).append(
                    {"series": s["name"], "state": "not-applicable", "reason": f["reason"]}
                )
    return {c: cves[c] for c in sorted(cves)}


def collect(
    policy: Policy,
    plan: Plan,
    repo: pygit2.Repository,
    *,
    fork_tip: Callable[[str], str | None],
    forge: Forge | None,
    releases_dir: Path,
    now: dt.datetime | None = None,
) -> JSONDoc:
    """The status document (`stablectl.status/1`). `fork_tip(branch)` gives the mirror's tip."""
    prs, release_prs = _prs_by_fix(policy, forge)
    src = _Sources(
        policy=policy,
        repo=repo,
        prs=prs,
        forge=forge,
        releases_dir=releases_dir,
        release_prs=release_prs,
    )
    series = [
        _series(src, sp, fork_tip(sp.series.stable_branch) or sp.selection.base_sha)
        for sp in plan.series
    ]
    return {
        "schema": SCHEMA,
        "stablectl": __version__,
        "project": policy.project,
        "generated": iso_time(int((now or dt.datetime.now(dt.UTC)).timestamp())),
        "mirror": policy.fork.git,
        "series": series,
        "cves": _cves(series),
    }


def feed_entries(status: JSONDoc) -> list[JSONDoc]:
    """Atom entries: every release, and every security backport on a stable branch."""
    entries = []
    for s in status["series"]:
        for r in s["releases"]:
            entries.append(
                {
                    "id": f"urn:stablectl:{status['project']}:release:{r['tag']}",
                    "title": f"{status['project']} {r['version']} released",
                    "updated": r["date"] or status["generated"],
                    "summary": f"{len(r['fixes'])} fixes"
                    + (f"; fixes {', '.join(r['cves'])}" if r["cves"] else ""),
                    "lines": [
                        f["subject"] + (f" ({', '.join(f['cves'])})" if f["cves"] else "")
                        for f in r["fixes"]
                    ],
                }
            )
            for f in r["fixes"]:
                if f["security"]:
                    entries.append(_backport_entry(status, s, f, when=r["date"], tag=r["tag"]))
        for f in s["merged_unreleased"]:
            if f["security"]:
                entries.append(_backport_entry(status, s, f, when=status["generated"], tag=None))
        rpr = s.get("release_pr")
        if rpr:
            entries.append(
                {
                    "id": f"urn:stablectl:{status['project']}:proposed:{rpr['tag']}:"
                    f"{rpr['commit']}",
                    "title": f"{status['project']} {rpr['version']} proposed: review until "
                    f"{rpr['deadline']}",
                    "updated": status["generated"],
                    "summary": f"release PR #{rpr['number']} ({rpr['url']}) on "
                    f"{rpr['commit'][:12]}; not tagged before {rpr['deadline']}",
                    "lines": [f["subject"] for f in s["merged_unreleased"]],
                }
            )
        for f in s["not_applicable"]:
            if f["security"]:
                entries.append(_not_applicable_entry(status, s, f))
    entries.sort(key=lambda e: (e["updated"], e["id"]), reverse=True)
    return entries


def _backport_entry(
    status: JSONDoc,
    s: JSONDoc,
    f: JSONDoc,
    *,
    when: str | None,
    tag: str | None,
) -> JSONDoc:
    cves = f" ({', '.join(f['cves'])})" if f["cves"] else ""
    return {
        "id": f"urn:stablectl:{status['project']}:backport:{s['name']}:{f['commit']}",
        "title": f"[{s['name']}] security backport: {f['subject']}{cves}",
        "updated": when or status["generated"],
        "summary": f"on {s['branch']} as {f['commit'][:12]}"
        + (f", released in {tag}" if tag else ", not released yet"),
        "lines": [],
    }


def _not_applicable_entry(status: JSONDoc, s: JSONDoc, f: JSONDoc) -> JSONDoc:
    cves = f" ({', '.join(f['cves'])})" if f["cves"] else ""
    return {
        "id": f"urn:stablectl:{status['project']}:not-applicable:{s['name']}:{f['original']}",
        "title": f"[{s['name']}] security fix not applicable: {f['subject']}{cves}",
        "updated": status["generated"],
        "summary": f"not applicable to {s['name']}: {f['reason']}",
        "lines": [],
    }


RELEASES_SCHEMA = "stablectl.releases/1"


def releases_json(status: JSONDoc) -> JSONDoc:
    """`releases.json`: every release of every series, oldest first per series, with what a
    packager's tooling needs (version, date, tag object, commit, the previous release, each
    file with its URL and SHA-256), and the releases under review with their deadlines. It is
    also the release log `verify --release-log` replays against the mirror."""
    return {
        "schema": RELEASES_SCHEMA,
        "project": status["project"],
        "generated": status["generated"],
        "mirror": status["mirror"],
        "releases": [
            {
                "series": s["name"],
                "branch": s["branch"],
                **{
                    k: r[k]
                    for k in ("version", "tag", "date", "tag_object", "commit", "previous", "url")
                },
                "cves": r["cves"],
                "files": r["files"],
            }
            for s in status["series"]
            for r in s["releases"]
        ],
        "proposed": [
            {"series": s["name"], **s["release_pr"]} for s in status["series"] if s["release_pr"]
        ],
    }


def _namespace(status: JSONDoc) -> str:
    """The VEX publisher's namespace: the mirror's URL when it is one."""
    mirror = str(status.get("mirror") or "")
    if mirror.startswith(("https://", "http://")):
        return mirror.removesuffix(".git")
    return f"urn:stablectl:{status['project']}"


def write_feed(status: JSONDoc, out: Path, trust: Trust | None = None) -> list[Path]:
    """status.json, releases.json, vex.json (CSAF 2.0 VEX), feed.atom and index.html into `out`
    (a directory ready for
    GitHub Pages: no external resources, works offline and without JavaScript)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "status.json": json.dumps(status, indent=2, sort_keys=True) + "\n",
        "releases.json": json.dumps(releases_json(status), indent=2, sort_keys=True) + "\n",
        "feed.atom": render_markup(
            "feed.atom.j2",
            status=status,
            entries=feed_entries(status),
            updated=status["generated"],
        ),
        VEX_NAME: json.dumps(
            vex_document(status, namespace=_namespace(status)), indent=2, sort_keys=True
        )
        + "\n",
        "index.html": render_markup(
            "status.html.j2", status=status, cve_json=json.dumps(status["cves"], sort_keys=True)
        ),
    }
    written = []
    for name, text in files.items():
        path = out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    # The release log is signed with the release key (when one is set), so a downstream's
    # `verify --release-log` rejects a log the mirror forged or kept old; a stale signature
    # never stays beside a new log.
    log = out / "releases.json"
    for stale in detached_signatures(log.name):
        (out / stale).unlink(missing_ok=True)
    key = signing_key_from_env()
    if key is not None:
        signature = sign_file(log, key)
        check_signed_file(log, signature, trust or Trust())
        written.append(signature)
    return written
