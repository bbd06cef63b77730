"""`stablectl skip`: close a backport PR and keep its fix out (`/stablectl skip`)."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import find_pr, obj, policy_option
from stablectl.cli.output import console
from stablectl.forge import open_forge
from stablectl.policy import load_policy


@click.command("skip")
@click.argument("number", type=int)
@policy_option
@click.option("--reason", default="", help="Why (kept in a comment).")
@click.pass_context
def skip(ctx: click.Context, number: int, policy_file: Path, reason: str) -> None:
    """Close backport PR NUMBER for good (`/stablectl skip`): sync will not reopen it.

    \b
    Example:
      stablectl skip 7 --policy p.yaml --reason "needs a new API"
    """
    policy = load_policy(policy_file)
    forge = open_forge(policy, obj(ctx).state_dir)
    pr = find_pr(forge, number)
    forge.set_labels(number, sorted({*pr.labels, policy.label("skip")}))
    note = f"Skipped from the command line{': ' + reason if reason else ''}."
    forge.close_pr(number, comment=note)
    console().print(f"PR #{number} closed and labelled skip", markup=False)
