"""`stablectl init`: stable branches, workflows and labels on the fork."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj, open_workspace, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller.init import init_fork
from stablectl.forge import fork_token, open_forge
from stablectl.policy import load_policy


@click.command("init")
@policy_option
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_context
def init(ctx: click.Context, policy_file: Path, dry_run: bool, as_json: bool) -> None:
    """Make the fork ready: stable branches at their base tags, the workflows and the policy
    on the control branch (ci.control_branch), the labels. Running it again changes nothing.

    \b
    Examples:
      stablectl init --policy policies/cpython.yaml --dry-run
      GITHUB_TOKEN=... stablectl init --policy policies/cpython.yaml
    """
    policy = load_policy(policy_file)
    state = obj(ctx).state_dir
    with open_workspace(policy, state) as ws:
        forge = open_forge(policy, state)
        token = fork_token(policy)
        ws.fetch()
        report = init_fork(
            ws,
            forge,
            policy_text=policy_file.read_bytes(),
            policy_name=policy_file.name,
            token=token,
            dry_run=dry_run,
        )
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "stable_branches_created": report.branches,
                "control_commit": report.control,
                "tests_commit": report.tests,
                "stable_infra": report.stable_infra,
                "labels_created": report.labels,
            }
        )
        return
    con = console()
    verb = "would " if dry_run else ""
    if not report.changed:
        con.print("the fork is ready: nothing to do")
        return
    for b in report.branches:
        con.print(f"{verb}create {b} at its base tag", markup=False)
    if report.control:
        con.print(
            f"{verb}commit the workflows and the policy to {policy.ci.control_branch} "
            f"({report.control[:10]})",
            markup=False,
        )
    if report.tests:
        con.print(
            f"{verb}commit the workflows to {policy.ci.tests_branch}, where test runs are "
            f"dispatched ({report.tests[:10]})",
            markup=False,
        )
    for b in report.stable_infra:
        con.print(f"{verb}add the test workflow to {b} (ci.trigger: app)", markup=False)
    if report.labels:
        con.print(f"{verb}create labels: {', '.join(report.labels)}", markup=False)
