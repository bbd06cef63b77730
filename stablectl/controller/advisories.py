"""Security advisories in OSV format (e.g. psf/advisory-database) as a flag source.

An advisory flags a commit when the commit is one of its `fixed` events (GIT ranges, optionally
only those of one repository), is a backport naming such a commit in its trailer (its fix group
then carries the original too), or names an issue (`gh-N`, `bpo-N`) or PR the advisory's
references point at. Each hit's reason names the advisory and its aliases (CVE ids), which the
fix then carries into PR bodies, release notes, manifests and OSV records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl.gitops.git import git

_ISSUE_URLS = [
    (re.compile(r"bugs\.python\.org/issue(\d+)"), "bpo-{}"),
    (re.compile(r"github\.com/[^/]+/[^/]+/issues/(\d+)"), "gh-{}"),
]
_PR_URL = re.compile(r"github\.com/[^/]+/[^/]+/pull/(\d+)")


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]

    def label(self) -> str:
        return self.id + (f" ({', '.join(self.aliases)})" if self.aliases else "")


@dataclass
class AdvisoryIndex:
    fixed: dict[str, list[Advisory]] = field(default_factory=dict)
    issues: dict[str, list[Advisory]] = field(default_factory=dict)
    prs: dict[int, list[Advisory]] = field(default_factory=dict)
    digest: str = ""
    count: int = 0

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, bytes]], repo: str | None) -> AdvisoryIndex:
        idx = cls()
        h = hashlib.sha256()
        want = _norm_repo(repo) if repo else None
        for name, data in sorted(records):
            h.update(name.encode() + b"\0" + data)
            try:
                rec = json.loads(data)
            except ValueError:
                continue  # not an OSV record
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                continue
            adv = Advisory(
                rec["id"], tuple(a for a in rec.get("aliases") or [] if isinstance(a, str))
            )
            idx.count += 1
            for aff in rec.get("affected") or []:
                for rng in aff.get("ranges") or []:
                    if rng.get("type") != "GIT":
                        continue
                    if want and _norm_repo(str(rng.get("repo", ""))) != want:
                        continue
                    for ev in rng.get("events") or []:
                        sha = ev.get("fixed")
                        if isinstance(sha, str) and len(sha) == 40:
                            idx.fixed.setdefault(sha.lower(), []).append(adv)
            for ref in rec.get("references") or []:
                url = str(ref.get("url", ""))
                for rx, fmt in _ISSUE_URLS:
                    m = rx.search(url)
                    if m:
                        idx.issues.setdefault(fmt.format(m.group(1)), []).append(adv)
                m = _PR_URL.search(url)
                if m and (want is None or want in _norm_repo(url)):
                    idx.prs.setdefault(int(m.group(1)), []).append(adv)
        idx.digest = h.hexdigest()[:16]
        return idx

    def match(
        self, sha: str, trailers: Iterable[str], issues: Iterable[str], pr: int | None
    ) -> tuple[str, list[Advisory]] | None:
        """Why and by which advisories a commit is flagged, or None."""
        if sha in self.fixed:
            return "fixed commit", self.fixed[sha]
        for t in trailers:
            if t in self.fixed:
                return f"backport of fixed commit {t[:10]}", self.fixed[t]
        for i in issues:
            if i in self.issues:
                return f"{i} in references", self.issues[i]
        if pr is not None and pr in self.prs:
            return f"PR {pr} in references", self.prs[pr]
        return None


def _norm_repo(url: str) -> str:
    url = url.lower().rstrip("/")
    url = re.sub(r"\.git$", "", url)
    return re.sub(r"^(https?://|git@|ssh://git@)", "", url).replace(":", "/")


def load_advisories(source: str, repo: str | None, state_dir: Path) -> AdvisoryIndex:
    """Read an OSV database: a directory of JSON files, or a git repository (URL or path),
    fetched afresh into STATE/advisories/ on every run."""
    path = Path(source).expanduser()
    if path.is_dir() and not (path / "HEAD").exists() and not (path / ".git").exists():
        files = [(str(p.relative_to(path)), p.read_bytes()) for p in path.rglob("*.json")]
        return AdvisoryIndex.from_records(files, repo)
    dest = state_dir / "advisories" / (hashlib.sha256(source.encode()).hexdigest()[:12] + ".git")
    if not dest.exists():
        _git(["clone", "--bare", "--quiet", "--filter=blob:none", source, str(dest)], source)
    else:
        _git(
            [
                "--git-dir",
                str(dest),
                "fetch",
                "--quiet",
                "--prune",
                "origin",
                "+HEAD:refs/heads/stablectl-advisories",
            ],
            source,
        )
    r = pygit2.Repository(str(dest))
    ref = r.references.get("refs/heads/stablectl-advisories") or r.head
    tree = ref.peel(pygit2.Commit).tree
    records: list[tuple[str, bytes]] = []
    _walk(r, tree, "", records)
    return AdvisoryIndex.from_records(records, repo)


def _walk(
    repo: pygit2.Repository, tree: pygit2.Tree, prefix: str, out: list[tuple[str, bytes]]
) -> None:
    for e in tree:
        name = f"{prefix}{e.name}"
        if e.type_str == "tree":
            _walk(repo, repo[e.id].peel(pygit2.Tree), name + "/", out)
        elif name.endswith(".json"):
            out.append((name, bytes(repo[e.id].read_raw())))


def _git(args: list[str], source: str) -> None:
    git(args, what=f"cannot read the advisory database {source}")
