"""`stablectl verify`: a provenance audit of the mirror, runnable by anyone with read access.

For each series, after fetching upstream and the mirror into the cache:

- the stable branch descends from its base tag, is linear, and is a fast-forward of the state
  this machine last verified (kept in `STATE/verify-known.json`; a rewrite is an error, loudly);
- every commit after the base is a backport naming, by its `(cherry picked from commit …)`
  trailer, a commit upstream has (on an upstream branch or tag, or in the series' patch queue),
  whose patch it equals (patch-id) or from which it is *adapted*, with the size of the
  adaptation; release commits (`Stablectl-Release:`) change no file, infrastructure commits
  (`Stablectl-Infrastructure:`) only `.github/`;
- every release tag of the series is annotated, points at a release commit on the branch that
  names its version, and has not moved since it was last verified; where the release's files
  are at hand (`--releases DIR`, default the state directory's), the manifest names that commit
  and every artifact's SHA-256 matches it; with `--rebuild` the tarballs are rebuilt from the tag
  and must match byte for byte (they are reproducible).
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
from stablectl.controller.release import RELEASE_TRAILER, release_trailer_version, tag_of
from stablectl.gitops.archive import build_tarballs
from stablectl.gitops.messages import parse_message
from stablectl.gitops.objects import first_parent_diff
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Policy, Series

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
            "findings": [f.__dict__ for f in self.findings],
        }


def _patch_lines(diff: pygit2.Diff) -> Counter[str]:
    """The added and removed lines of a diff, with their file: what a patch changes."""
    out: Counter[str] = Counter()
    for patch in diff:
        if patch is None:
            continue
        path = patch.delta.new_file.path
        for hunk in patch.hunks:
            for line in hunk.lines:
                if line.origin in "+-":
                    out[f"{path}\0{line.origin}{line.content}"] += 1
    return out


def adaptation(repo: pygit2.Repository, commit: pygit2.Commit, source: pygit2.Commit) -> int:
    """How many changed lines differ between a backport and the commit it names (0: the same
    change, perhaps at other line numbers)."""
    a, b = _patch_lines(first_parent_diff(commit)), _patch_lines(first_parent_diff(source))
    return sum(((a - b) + (b - a)).values())


class Verifier:
    def __init__(self, engine: Engine, policy: Policy, releases_dir: Path | None) -> None:
        self.engine = engine
        self.policy = policy
        self.repo = engine.cache.repo
        self.releases_dir = releases_dir
        self.report = VerifyReport(policy.fork.git)
        self._upstream_tips = [
            ref.resolve().target
            for name in self.repo.references
            if name.startswith(("refs/remotes/upstream/", "refs/tags/"))
            for ref in [self.repo.references[name]]
        ]
        self._reachable: dict[str, bool] = {}

    def _find(self, level: Level, series: str, subject: str, what: str) -> None:
        self.report.findings.append(Finding(level, series, subject, what))

    def _upstream_has(self, sha: str) -> bool:
        if sha not in self._reachable:
            oid = pygit2.Oid(hex=sha)
            ok = False
            for tip in self._upstream_tips:
                commit = self.repo[tip].peel(pygit2.Commit)
                if commit.id == oid or self.repo.descendant_of(commit.id, oid):
                    ok = True
                    break
            self._reachable[sha] = ok
        return self._reachable[sha]

    # -------------------------------------------------------------------- branch

    def audit(self, series: Series, known: dict[str, str]) -> SeriesAudit:
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
        walker = repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base))
        for c in reversed(list(walker)):
            self._commit(series, audit, c)
        self._tags(series, audit, tip, known)
        return audit

    def _commit(self, series: Series, audit: SeriesAudit, c: pygit2.Commit) -> None:
        name, sha, msg = series.name, str(c.id), c.message
        subject = msg.splitlines()[0] if msg else ""
        audit.counts["commits"] += 1
        if len(c.parents) != 1:
            self._find("error", name, sha, "a merge commit: stable branches are linear")
            return
        paths = [
            p
            for d in first_parent_diff(c).deltas
            for p in dict.fromkeys((d.old_file.path, d.new_file.path))
        ]
        if re.search(rf"^{RELEASE_TRAILER}:", msg, re.M):
            audit.counts["release commits"] += 1
            if paths:
                self._find("error", name, sha, f"a release commit that changes files: {paths}")
            return
        if re.search(r"^Stablectl-Infrastructure:", msg, re.M):
            audit.counts["infrastructure commits"] += 1
            outside = [p for p in paths if not p.startswith(".github/")]
            if outside:
                self._find("error", name, sha, f"infrastructure commit touches {outside}")
            return
        named = parse_message(msg).cherry_picked_from
        if not named:
            same = self._same_patch_upstream(c, paths, audit.base or "")
            if same is None:
                self._find(
                    "error", name, sha, f"no provenance: {subject!r} names no upstream commit"
                )
                return
            audit.counts["backports"] += 1
            audit.counts["identical"] += 1
            audit.counts["matched by patch-id"] += 1
            self._find(
                "warning",
                name,
                sha,
                f"no trailer, but the same patch as upstream {same} (a backport by hand)",
            )
            return
        source_sha = named[-1]
        try:
            source = self.repo.revparse_single(source_sha).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            source = None
        if source is None or not self._upstream_has(str(source.id)):
            self._find(
                "error",
                name,
                sha,
                f"names {source_sha} which upstream does not have (a forged or stale trailer?)",
            )
            return
        audit.counts["backports"] += 1
        size = adaptation(self.repo, c, source)
        if size == 0:
            audit.counts["identical"] += 1
        else:
            audit.counts["adapted"] += 1
            audit.adapted.append(
                {"commit": sha, "source": str(source.id), "lines": size, "subject": subject}
            )
            self._find(
                "warning", name, sha, f"adapted from {str(source.id)[:12]}: {size} lines differ"
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

    def _tags(self, series: Series, audit: SeriesAudit, tip: str, known: dict[str, str]) -> None:
        repo, name = self.repo, series.name
        n = 1
        while True:
            tag = tag_of(self.policy, series, n)
            ref = repo.references.get(f"refs/fork-tags/{tag}")
            if ref is None:
                break
            n += 1
            obj = repo[ref.target]
            entry: JSONDoc = {
                "tag": tag,
                "annotated": obj.type == pygit2.enums.ObjectType.TAG,
            }
            audit.releases.append(entry)
            if not entry["annotated"]:
                self._find("error", name, tag, "a lightweight tag: release tags are annotated")
            commit = obj.peel(pygit2.Commit)
            entry["commit"] = str(commit.id)
            was = known.get(f"tag:{tag}")
            if was and was != str(ref.target):
                self._find("error", name, tag, f"MOVED: was {was} when last verified")
            on_branch = str(commit.id) == tip or repo.descendant_of(pygit2.Oid(hex=tip), commit.id)
            if not on_branch:
                self._find("error", name, tag, f"points at {commit.id} off {series.stable_branch}")
            version = release_trailer_version(commit.message)
            if (
                version is None
                or tag_of(self.policy, series, int(version.rsplit(".", 1)[1])) != tag
            ):
                self._find(
                    "error", name, tag, "does not point at the release commit of its version"
                )
            self._artifacts(series, tag, str(commit.id), entry)

    def _artifacts(self, series: Series, tag: str, commit: str, entry: JSONDoc) -> None:
        if self.releases_dir is None:
            return
        directory = self.releases_dir / tag
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            entry["manifest"] = None
            self._find("warning", series.name, tag, f"no manifest in {directory} to check")
            return
        manifest = json.loads(manifest_path.read_text())
        entry["manifest"] = str(manifest_path)
        if manifest.get("commit") != commit:
            self._find(
                "error",
                series.name,
                tag,
                f"the manifest names commit {manifest.get('commit')}, the tag {commit}",
            )
        checked = 0
        for art in manifest.get("artifacts", []):
            path = directory / art["name"]
            if not path.is_file():
                self._find("warning", series.name, str(path), "artifact not at hand")
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            checked += 1
            if digest != art["sha256"]:
                self._find(
                    "error",
                    series.name,
                    str(path),
                    f"SHA-256 {digest} does not match the manifest's {art['sha256']}",
                )
        entry["artifacts_checked"] = checked

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
) -> VerifyReport:
    remote = policy.fork.git
    known = load_known(engine.state_dir, remote)
    v = Verifier(engine, policy, releases_dir)
    for s in series:
        audit = v.audit(s, known)
        v.report.audits.append(audit)
        if rebuild:
            for entry in audit.releases:
                v.rebuild(s, entry)
    if record and v.report.ok:
        save_known(engine.state_dir, remote, v.report, engine.cache.repo)
    return v.report
