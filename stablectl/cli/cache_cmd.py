"""`stablectl cache fetch|accept-rewrite`: the local upstream cache."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj, open_workspace, policy_option
from stablectl.cli.output import Reporter, console
from stablectl.policy import load_policy


@click.group("cache")
def cache() -> None:
    """Manage the local bare cache of upstream and the fork."""


@cache.command("fetch")
@policy_option
@click.pass_context
def fetch(ctx: click.Context, policy_file: Path) -> None:
    """Fetch upstream and the fork into the cache; stop if upstream rewrote history."""
    policy = load_policy(policy_file)
    reporter = Reporter(True)
    with (
        open_workspace(policy, obj(ctx).state_dir, progress=reporter.update) as ws,
        reporter.running(),
    ):
        ws.fetch()
    console().print(f"cache up to date: {ws.cache.path}", markup=False)


@cache.command("accept-rewrite")
@policy_option
@click.argument("branch")
@click.pass_context
def accept_rewrite(ctx: click.Context, policy_file: Path, branch: str) -> None:
    """Trust upstream's rewritten BRANCH (or moved tag) from now on.

    Stable branches on the fork are never rewritten: fixes already picked from the old history
    stay, and are found again by patch-id.
    """
    policy = load_policy(policy_file)
    with open_workspace(policy, obj(ctx).state_dir) as ws:
        accepted = ws.cache.accept_rewrite(branch)
    if accepted:
        console().print(f"accepted the current history of {branch}", markup=False)
    else:
        console().print(f"nothing recorded for {branch}", markup=False)
