"""`stablectl export`: the stable branch since its base as a patch queue (quilt or mbox)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pygit2

from stablectl.cli.context import obj, policy_option
from stablectl.cli.output import console
from stablectl.controller.plan import Engine
from stablectl.controller.release import RELEASE_TRAILER
from stablectl.errors import GitError, UsageError
from stablectl.gitops.messages import parse_message
from stablectl.policy import Policy, load_policy


def _git(cache: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "--git-dir", str(cache), *args], capture_output=True)
    if proc.returncode != 0:
        raise GitError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _slug(subject: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in subject)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:52] or "patch"


@click.command("export")
@policy_option
@click.option("--series", "series_name", required=True, help="Series to export.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["quilt", "mbox"]),
    default="quilt",
    show_default=True,
    help="quilt: DIR/series + DEP-3 patches; mbox: DIR/SERIES.mbox.",
)
@click.option("--offline", is_flag=True, help="Use the cache as it is; do not fetch.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def export(
    ctx: click.Context,
    policy_file: Path,
    series_name: str,
    fmt: str,
    offline: bool,
    directory: Path,
) -> None:
    """Write the stable branch since its base tag as a patch series a distribution can carry.

    quilt: one DEP-3 patch per backport (Description, Author, Origin: the upstream commit,
    Forwarded: not-needed) and a `series` file; mbox: `git format-patch` of the same commits.
    Empty release commits are left out.

    \b
    Examples:
      stablectl export --policy policies/cpython.yaml --series 3.11.2 debian/patches
      stablectl export --policy p.yaml --series 3.11.2 --format mbox out/
    """
    policy = load_policy(policy_file)
    s = policy.get_series(series_name)
    engine = Engine(policy, obj(ctx).state_dir)
    try:
        if not offline:
            engine.fetch()
        cache = engine.cache
        tip = cache.fork_branch(s.stable_branch)
        base = cache.peel(f"refs/tags/{s.base}")
        if tip is None or base is None:
            raise UsageError(f"the fork has no {s.stable_branch} or upstream no {s.base}")
        repo = cache.repo
        walker = repo.walk(
            pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE
        )
        walker.hide(pygit2.Oid(hex=base))
        commits = [
            c
            for c in walker
            if len(c.parents) == 1
            and f"{RELEASE_TRAILER}:" not in c.message
            and c.tree.id != c.parents[0].tree.id
        ]
        directory.mkdir(parents=True, exist_ok=True)
        if fmt == "mbox":
            out = directory / f"{s.name}.mbox"
            data = b"".join(
                _git(cache.path, "format-patch", "--stdout", "--no-signature", "-1", str(c.id))
                for c in commits
            )
            out.write_bytes(data)
            console().print(f"wrote {len(commits)} patches to {out}", markup=False)
            return
        names = []
        for i, c in enumerate(commits, 1):
            name = f"{i:04d}-{_slug(c.message.splitlines()[0])}.patch"
            (directory / name).write_bytes(
                _dep3(policy, c)
                + _git(
                    cache.path,
                    "diff-tree",
                    "-p",
                    "--binary",
                    "--full-index",
                    "--no-color",
                    str(c.parents[0].id),
                    str(c.id),
                )
            )
            names.append(name)
        (directory / "series").write_text(
            f"# {s.stable_branch} since {s.base}: exported by stablectl\n"
            + "".join(f"{n}\n" for n in names)
        )
        console().print(f"wrote {len(names)} patches and series to {directory}", markup=False)
    finally:
        engine.close()


def _date(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _dep3(policy: Policy, c: pygit2.Commit) -> bytes:
    info = parse_message(c.message)
    subject, _, body = c.message.partition("\n")
    web = policy.upstream.web
    lines = [f"Description: {subject.strip()}"]
    lines += [f" {ln}" if ln.strip() else " ." for ln in body.strip("\n").splitlines()]
    lines.append(f"Author: {c.author.name} <{c.author.email}>")
    for sha in info.cherry_picked_from:
        lines.append(
            f"Origin: upstream, {web}/commit/{sha}" if web else f"Origin: upstream, commit {sha}"
        )
    if not info.cherry_picked_from:
        lines.append("Origin: vendor")
    lines += [f"Bug: {web}/issues/{i[3:]}" for i in info.issues if i.startswith("gh-") and web]
    lines.append("Forwarded: not-needed")
    lines.append(f"Last-Update: {_date(c.commit_time)}")
    lines.append(f"X-Stablectl-Commit: {c.id}")
    return ("\n".join(lines) + "\n---\n").encode()
