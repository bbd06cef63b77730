"""`stablectl ci run`: the local forge's CI (the policy's test command on every PR head)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from stablectl.cli.context import local_forge, obj, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller.identities import stablectl_prs
from stablectl.controller.missing_names import log_evidence
from stablectl.errors import UsageError
from stablectl.forge import open_forge
from stablectl.forge.localci import CIResult, needs_run, report, run_ci
from stablectl.policy import load_policy


@click.group("ci")
def ci() -> None:
    """The local forge's CI runner."""


@ci.command("run")
@policy_option
@click.option("--pr", "numbers", type=int, multiple=True, help="Only this PR (repeatable).")
@click.option("--force", is_flag=True, help="Run again even if the head already has a result.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds per run.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def run(
    ctx: click.Context,
    policy_file: Path,
    numbers: tuple[int, ...],
    force: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Run the policy's checks.test_command on open PR heads and record check `local-ci`.

    Heads that already have a result are skipped unless --force, drafts (conflicts) unless
    named with --pr. A failure comments on the PR with the log and labels it tests-failed.
    Exit 1 if any run failed.

    \b
    Examples:
      stablectl ci run --policy p.yaml
      stablectl ci run --policy p.yaml --pr 3 --force
    """
    policy = load_policy(policy_file)
    command = policy.checks.test_command
    if not command:
        raise UsageError(f"{policy_file}: checks.test_command is not set; nothing to run")
    state_dir = obj(ctx).state_dir
    forge = local_forge(open_forge(policy, state_dir), "stablectl ci run")
    # Draft PRs carry conflict markers: their tests would only fail. Name one with --pr to run
    # it anyway.
    prs = [forge.get_pr(n) for n in numbers] if numbers else stablectl_prs(policy, forge)
    results = []
    con = console()
    for pr in prs:
        if pr.draft and not numbers:
            continue
        if pr.state != "open":
            raise UsageError(f"PR #{pr.number} is {pr.state}; CI runs on open PRs")
        if not force and not needs_run(forge, pr):
            continue
        if not as_json:
            con.print(f"PR #{pr.number} {pr.head_sha[:10]}: {escape(command)} …")
        res = run_ci(forge, command, state_dir / "ci-logs", pr, timeout=timeout)
        report(forge, pr, res, policy.label("tests-failed"), evidence=log_evidence(res.log))
        results.append(res)
        if not as_json:
            style = "green" if res.conclusion == "success" else "red"
            con.print(f"  [{style}]{res.conclusion}[/{style}] in {res.seconds:.1f}s, log {res.log}")
    if as_json:
        print_json({"runs": [_run_json(r) for r in results]})
    elif not results:
        con.print("nothing to run: every open PR head has a result (use --force to rerun)")
    ctx.exit(1 if any(r.conclusion != "success" for r in results) else 0)


def _run_json(r: CIResult) -> dict[str, object]:
    return {
        "pr": r.pr,
        "sha": r.sha,
        "conclusion": r.conclusion,
        "seconds": round(r.seconds, 3),
        "log": str(r.log),
        "exit": r.returncode,
    }
