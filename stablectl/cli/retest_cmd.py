"""`stablectl retest`: ask for a backport PR's tests again (`/stablectl retest`)."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import find_pr, obj, policy_option
from stablectl.cli.output import console
from stablectl.controller.workflows import ci_request
from stablectl.forge import open_forge
from stablectl.policy import load_policy


@click.command("retest")
@click.argument("number", type=int)
@policy_option
@click.pass_context
def retest(ctx: click.Context, number: int, policy_file: Path) -> None:
    """Ask for the tests of backport PR NUMBER to run again (`/stablectl retest`).

    \b
    Example:
      stablectl retest 7 --policy p.yaml && stablectl ci run --policy p.yaml
    """
    policy = load_policy(policy_file)
    forge = open_forge(policy, obj(ctx).state_dir)
    pr = find_pr(forge, number)
    failed = policy.label("tests-failed")
    if failed in pr.labels:
        forge.set_labels(number, [lb for lb in pr.labels if lb != failed])
    forge.request_tests(number, pr.head_sha, ci_request(policy), again=True)
    console().print(f"PR #{number}: tests requested again on {pr.head_sha[:10]}", markup=False)
