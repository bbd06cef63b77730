"""`stablectl release`: propose a point release now."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj, open_workspace, policy_option
from stablectl.cli.output import print_json
from stablectl.cli.sync_cmd import show
from stablectl.controller.sync import Syncer
from stablectl.forge import fork_token, open_forge
from stablectl.policy import load_policy


@click.command("release")
@policy_option
@click.option(
    "--series", "series", multiple=True, required=True, help="Series to release (repeatable)."
)
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_context
def release(
    ctx: click.Context, policy_file: Path, series: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """Propose a point release now (`/stablectl release SERIES`): a sync that opens the
    release PR for SERIES if it has unreleased fixes, whatever release.trigger says. The PR is
    merged, tagged and published by a later sync, once approved and past its review deadline.

    \b
    Example:
      stablectl release --policy policies/cpython.yaml --series 3.11.2
    """
    policy = load_policy(policy_file)
    for name in series:
        policy.get_series(name)
    state = obj(ctx).state_dir
    with open_workspace(policy, state) as ws:
        forge = open_forge(policy, state)
        token = fork_token(policy)
        syncer = Syncer(ws, forge, policy_file=str(policy_file), token=token)
        syncer.release_requests.update(series)
        report = syncer.run(dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
    else:
        show(report)
    ctx.exit(1 if report.problems else 0)
