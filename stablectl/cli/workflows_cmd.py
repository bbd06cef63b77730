"""`stablectl workflows` and `stablectl init`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pygit2

from stablectl.cli.context import obj, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller.init import init_fork
from stablectl.controller.plan import Engine
from stablectl.controller.workflows import drift, render_workflows
from stablectl.forge import fork_token, open_forge
from stablectl.policy import load_policy


@click.command("workflows")
@policy_option
@click.option(
    "--write",
    "write_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the workflows under DIR/.github/workflows/.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 with a diff if the workflows in --dir (or on the fork's control "
    "branch) differ from the policy's.",
)
@click.option(
    "--dir",
    "check_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --check: compare with this checkout instead of the fork.",
)
@click.pass_context
def workflows_command(
    ctx: click.Context,
    policy_file: Path,
    write_dir: Path | None,
    check: bool,
    check_dir: Path | None,
) -> None:
    """Render the fork's GitHub Actions workflows from the policy.

    stable-tests.yml builds CPython and runs its test suite on backport PR heads;
    stablectl.yml runs `stablectl sync` on a schedule, by hand and on `/stablectl` comments.

    \b
    Examples:
      stablectl workflows --policy policies/cpython.yaml            # print them
      stablectl workflows --policy policies/cpython.yaml --write .  # into ./.github/workflows
      stablectl workflows --policy policies/cpython.yaml --check    # drift on the fork?
    """
    policy = load_policy(policy_file)
    rendered = render_workflows(policy, policy_file.name)
    if write_dir is not None:
        for r in rendered:
            dest = write_dir / r.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(r.text)
            console().print(f"wrote {dest}", markup=False)
    if check:
        if check_dir is not None:
            current = {r.path: _read(check_dir / r.path) for r in rendered}
            where = str(check_dir)
        else:
            engine = Engine(policy, obj(ctx).state_dir)
            try:
                engine.fetch()
                tip = engine.cache.fork_branch(policy.ci.control_branch)
                current = {r.path: _blob(engine.cache.repo, tip, r.path) for r in rendered}
            finally:
                engine.close()
            where = f"the fork's {policy.ci.control_branch}"
        diff = drift(rendered, current)
        if diff:
            sys.stdout.write(diff)
            console().print(
                f"workflows in {where} differ from the policy; "
                f"run `stablectl init --policy {policy_file}`",
                markup=False,
            )
            ctx.exit(1)
        console().print(f"workflows in {where} match the policy", markup=False)
        return
    if write_dir is None:
        for r in rendered:
            sys.stdout.write(f"# ---- {r.path}\n{r.text}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _blob(repo: pygit2.Repository, tip: str | None, path: str) -> str | None:
    if tip is None:
        return None
    try:
        entry = repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree[path]
    except KeyError:
        return None
    return bytes(repo[entry.id].read_raw()).decode("utf-8", "replace")


@click.command("init")
@policy_option
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_context
def init_command(ctx: click.Context, policy_file: Path, dry_run: bool, as_json: bool) -> None:
    """Make the fork ready: stable branches at their base tags, the workflows and the policy
    on the control branch (ci.control_branch), the labels. Running it again changes nothing.

    \b
    Examples:
      stablectl init --policy policies/cpython.yaml --dry-run
      GITHUB_TOKEN=... stablectl init --policy policies/cpython.yaml
    """
    policy = load_policy(policy_file)
    state = obj(ctx).state_dir
    engine = Engine(policy, state)
    forge = open_forge(policy, state)
    token = fork_token(policy)
    try:
        engine.fetch()
        report = init_fork(
            engine,
            forge,
            policy_text=policy_file.read_bytes(),
            policy_name=policy_file.name,
            token=token,
            dry_run=dry_run,
        )
    finally:
        engine.close()
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "stable_branches_created": report.branches,
                "control_commit": report.control,
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
    for b in report.stable_infra:
        con.print(f"{verb}add the test workflow to {b} (ci.trigger: app)", markup=False)
    if report.labels:
        con.print(f"{verb}create labels: {', '.join(report.labels)}", markup=False)
