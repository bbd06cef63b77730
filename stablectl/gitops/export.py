"""A stable branch since its base as a patch series a distribution carries: one DEP-3 patch per
backport (`git diff-tree -p --binary` under a DEP-3 header) and a quilt `series` file. Used by
`stablectl export` and for each release's `<stem>.patches.tar.xz` asset."""

from __future__ import annotations

import datetime as dt
import io
import lzma
import tarfile
from pathlib import Path

import pygit2

from stablectl.gitops.git import run_git_bytes
from stablectl.gitops.messages import RELEASE_TRAILER, parse_message
from stablectl.policy import Policy, Series


def _slug(subject: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in subject)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:52] or "patch"


def series_commits(repo: pygit2.Repository, base: str, tip: str) -> list[pygit2.Commit]:
    """The commits of base..tip that change something, oldest first (release commits and
    empty commits left out)."""
    walker = repo.walk(
        pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE
    )
    walker.hide(pygit2.Oid(hex=base))
    return [
        c
        for c in walker
        if len(c.parents) == 1
        and f"{RELEASE_TRAILER}:" not in c.message
        and c.tree.id != c.parents[0].tree.id
    ]


def mbox(cache: Path, commits: list[pygit2.Commit]) -> bytes:
    return b"".join(
        run_git_bytes(cache, ["format-patch", "--stdout", "--no-signature", "-1", str(c.id)])
        for c in commits
    )


def quilt(
    cache: Path, policy: Policy, series: Series, commits: list[pygit2.Commit]
) -> dict[str, bytes]:
    """File name -> content: the DEP-3 patches and the quilt `series` file naming them."""
    files: dict[str, bytes] = {}
    for i, c in enumerate(commits, 1):
        name = f"{i:04d}-{_slug(c.message.splitlines()[0])}.patch"
        diff = run_git_bytes(
            cache,
            [
                *("diff-tree", "-p", "--binary", "--full-index", "--no-color"),
                *(str(c.parents[0].id), str(c.id)),
            ],
        )
        files[name] = dep3(policy, c) + diff
    files["series"] = (
        f"# {series.stable_branch} since {series.base}: exported by stablectl\n"
        + "".join(f"{n}\n" for n in files)
    ).encode()
    return files


def quilt_tarball(files: dict[str, bytes], stem: str, mtime: int, out: Path) -> bytes:
    """The quilt files as a reproducible `stem/` tar.xz (sorted, owners 0, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.mode, info.mtime, info.size = 0o644, mtime, len(files[name])
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    data = lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    out.write_bytes(data)
    return data


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def dep3(policy: Policy, c: pygit2.Commit) -> bytes:
    """The DEP-3 header of a backport: one `Origin:` (the commit actually picked: the last
    `(cherry picked from commit …)` line); the upstream original it was backported from, when
    that is another commit, as `X-Upstream-Original:`."""
    info = parse_message(c.message)
    subject, _, body = c.message.partition("\n")
    web = policy.upstream.web

    def at(sha: str) -> str:
        return f"{web}/commit/{sha}" if web else f"commit {sha}"

    lines = [f"Description: {subject.strip()}"]
    lines += [f" {ln}" if ln.strip() else " ." for ln in body.strip("\n").splitlines()]
    lines.append(f"Author: {c.author.name} <{c.author.email}>")
    picked = info.cherry_picked_from
    if picked:
        lines.append(f"Origin: upstream, {at(picked[-1])}")
        lines += [f"X-Upstream-Original: {at(sha)}" for sha in picked[:-1]]
    else:
        lines.append("Origin: vendor")
    lines += [f"Bug: {web}/issues/{i[3:]}" for i in info.issues if i.startswith("gh-") and web]
    lines.append("Forwarded: not-needed")
    lines.append(f"Last-Update: {_date(c.commit_time)}")
    lines.append(f"X-Stablectl-Commit: {c.id}")
    return ("\n".join(lines) + "\n---\n").encode()
