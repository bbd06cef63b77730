"""`stablectl backport`: backport a commit by hand (controller/backport.py does the work)."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj
from stablectl.cli.output import console
from stablectl.controller.backport import Prepared, Pushed, finish, prepare
from stablectl.errors import UsageError
from stablectl.gitops.messages import ADAPTED_TRAILER
from stablectl.policy import load_policy


@click.command("backport")
@click.argument("sha", required=False)
@click.option("--series", help="Series to backport to.")
@click.option(
    "--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False), help="Policy file."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Work tree to prepare (default ./stablectl-<series>-<sha>).",
)
@click.option(
    "--continue",
    "cont",
    is_flag=True,
    help="After resolving: commit, push to the backport branch, update the PR.",
)
@click.option("--offline", is_flag=True, help="Do not fetch first.")
@click.pass_context
def backport(
    ctx: click.Context,
    sha: str | None,
    series: str | None,
    policy_file: Path | None,
    directory: Path | None,
    cont: bool,
    offline: bool,
) -> None:
    """Backport SHA to a series by hand: prepare a work tree with the cherry-pick (and its
    conflicts), then, once resolved, push it to the backport PR.

    \b
    Examples:
      stablectl backport 3230650 --series 3.11.2 --policy p.yaml
      cd stablectl-3.11.2-3230650 && $EDITOR Lib/ssl.py && git add -A
      stablectl backport --continue
    """
    if cont:
        _report_pushed(finish(directory or Path.cwd()))
        return
    if not sha or not series or policy_file is None:
        raise UsageError("give SHA, --series and --policy (or --continue in a prepared tree)")
    policy = load_policy(policy_file)
    prepared = prepare(
        policy, policy_file, obj(ctx).state_dir, series, sha, directory, offline=offline
    )
    _report(prepared)


def _report(p: Prepared) -> None:
    con = console()
    if not p.conflicted:
        con.print(
            f"{p.target.sha[:10]} applies cleanly onto {p.stable_branch}; review it in {p.work}, "
            "then `stablectl backport --continue` there to push it.",
            markup=False,
        )
        return
    con.print(
        f"Prepared {p.work}: {p.target.sha[:10]} onto {p.stable_branch} {p.target.tip[:10]} "
        "conflicts in:",
        markup=False,
    )
    for path in p.conflicted:
        con.print(f"  {path}", markup=False)
    con.print(
        "Resolve them, `git add` the files, then run there:\n  stablectl backport --continue",
        markup=False,
    )


def _report_pushed(p: Pushed) -> None:
    if p.adapted_lines is not None:
        console().print(
            f"adapted: {p.adapted_lines} changed lines differ from {p.source[:10]}; recorded as "
            f"{ADAPTED_TRAILER} (reviewed in #{p.pr.number})",
            markup=False,
        )
    console().print(
        f"pushed {p.head[:10]} to {p.branch}; PR #{p.pr.number} {p.pr.url}", markup=False
    )
