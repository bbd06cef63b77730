"""`stablectl export`: the stable branch since its base as a patch queue (quilt or mbox)."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj, open_workspace, policy_option
from stablectl.cli.output import console
from stablectl.errors import UsageError
from stablectl.gitops.export import mbox, quilt, series_commits
from stablectl.policy import load_policy


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
    with open_workspace(policy, obj(ctx).state_dir) as ws:
        if not offline:
            ws.fetch()
        cache = ws.cache
        tip = cache.fork_branch(s.stable_branch)
        base = cache.upstream_tag(s.base)
        if tip is None or base is None:
            raise UsageError(f"the fork has no {s.stable_branch} or upstream no {s.base}")
        commits = series_commits(cache.repo, base, tip)
        directory.mkdir(parents=True, exist_ok=True)
        if fmt == "mbox":
            out = directory / f"{s.name}.mbox"
            out.write_bytes(mbox(cache.path, commits))
            console().print(f"wrote {len(commits)} patches to {out}", markup=False)
            return
        files = quilt(cache.path, policy, s, commits)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        console().print(f"wrote {len(files) - 1} patches and series to {directory}", markup=False)
