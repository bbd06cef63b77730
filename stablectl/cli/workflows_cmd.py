"""`stablectl workflows` and `stablectl init`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pygit2

from stablectl.cli.context import obj, open_workspace, policy_option
from stablectl.cli.output import console
from stablectl.controller.workflows import drift, render_workflows
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
def workflows(
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
            diff = drift(rendered, current)
        else:
            with open_workspace(policy, obj(ctx).state_dir) as ws:
                branches = [policy.ci.control_branch]
                if policy.ci.trigger == "dispatch":
                    branches.append(policy.ci.tests_branch)  # where test runs are dispatched
                ws.fetch()
                diff = ""
                for branch in branches:
                    tip = ws.cache.fork_branch(branch)
                    current = {r.path: _blob(ws.cache.repo, tip, r.path) for r in rendered}
                    diff += drift(rendered, current).replace("fork:", f"fork:{branch}:")
            where = "the fork's " + " and ".join(branches)
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
