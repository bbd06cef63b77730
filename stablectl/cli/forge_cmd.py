"""Commands for people working with the forge: `prs`, `review`, `ci run`."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import obj, policy_option
from stablectl.cli.output import console, print_json
from stablectl.errors import UsageError
from stablectl.forge import open_forge
from stablectl.forge.base import Forge, PullRequest, ReviewState
from stablectl.forge.local import LocalForge
from stablectl.policy import Policy, load_policy


def _local(forge: Forge, what: str) -> LocalForge:
    if not isinstance(forge, LocalForge):
        raise UsageError(
            f"{what} is for the local forge; on GitHub, do it on GitHub (the fork's Actions "
            "run the tests; reviews are GitHub reviews)"
        )
    return forge


def _summary(forge: Forge, pr: PullRequest, policy: Policy) -> tuple[str, str]:
    checks = forge.checks(pr.head_sha)
    if not checks:
        ci = "none"
    elif any(c.failed for c in checks):
        ci = "failing"
    elif all(c.ok for c in checks):
        ci = "passing"
    else:
        ci = "running"
    maint = {m.lower() for m in policy.maintainers}
    latest: dict[str, tuple[str, str]] = {}
    for r in forge.reviews(pr.number):
        if r.state in ("APPROVED", "CHANGES_REQUESTED"):
            latest[r.user.lower()] = (r.state, r.commit)
    approvals = sum(
        1 for u, (s, c) in latest.items() if s == "APPROVED" and u in maint and c == pr.head_sha
    )
    changes = any(s == "CHANGES_REQUESTED" and u in maint for u, (s, _c) in latest.items())
    text = f"{approvals}/{policy.approvals.required}"
    if changes:
        text += " changes requested"
    return ci, text


_CI_STYLE = {"failing": "red", "passing": "green", "running": "yellow", "none": "dim"}


@click.command("prs")
@policy_option
@click.option("--all", "show_all", is_flag=True, help="Include closed and merged PRs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def prs_command(ctx: click.Context, policy_file: Path, show_all: bool, as_json: bool) -> None:
    """List stablectl's PRs on the fork, with CI state and maintainer approvals.

    \b
    Examples:
      stablectl prs --policy policies/cpython.yaml
      stablectl prs --policy p.yaml --all --json
    """
    policy = load_policy(policy_file)
    forge = open_forge(policy, obj(ctx).state_dir)
    prs = forge.list_prs("all" if show_all else "open")
    rows = []
    for pr in prs:
        ci, appr = _summary(forge, pr, policy) if pr.state == "open" else ("", "")
        rows.append((pr, ci, appr))
    if as_json:
        print_json(
            {
                "forge": forge.kind,
                "prs": [
                    {
                        "number": pr.number,
                        "title": pr.title,
                        "state": pr.state,
                        "draft": pr.draft,
                        "head": pr.head,
                        "base": pr.base,
                        "head_sha": pr.head_sha,
                        "labels": list(pr.labels),
                        "url": pr.url,
                        "marker": pr.marker.__dict__ if pr.marker else None,
                        "ci": ci or None,
                        "approvals": appr or None,
                    }
                    for pr, ci, _ in rows
                ],
                "api": forge.stats.as_dict(),
            }
        )
        return
    con = console()
    if not rows:
        con.print("no stablectl PRs" + ("" if show_all else " open"))
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("#", "series", "state", "CI", "approvals", "head", "title"):
        table.add_column(col, no_wrap=col != "title")
    for pr, ci, appr in rows:
        m = pr.marker
        state = pr.state + (" draft" if pr.draft else "")
        style = _CI_STYLE.get(ci, "")
        table.add_row(
            str(pr.number),
            m.series if m else "",
            state,
            f"[{style}]{ci}[/{style}]" if ci else "",
            appr,
            pr.head_sha[:10],
            escape(pr.title),
        )
    con.print(table)


@click.command("review")
@click.argument("verdict", type=click.Choice(["approve", "request-changes", "comment"]))
@click.argument("number", type=int)
@policy_option
@click.option("--as", "user", help="Reviewer login (default: $STABLECTL_USER or your login).")
@click.option("--body", default="", help="Review text.")
@click.pass_context
def review_command(
    ctx: click.Context, verdict: str, number: int, policy_file: Path, user: str | None, body: str
) -> None:
    """Review a backport PR on the local forge (on GitHub, review on GitHub).

    The review records the PR's current head: a push after it makes it stale, as on GitHub.

    \b
    Examples:
      stablectl review approve 3 --policy p.yaml --as alice
      stablectl review request-changes 3 --policy p.yaml --as bob --body "needs a test"
    """
    policy = load_policy(policy_file)
    forge = _local(open_forge(policy, obj(ctx).state_dir), "stablectl review")
    who = user or os.environ.get("STABLECTL_USER") or getpass.getuser()
    state: ReviewState = {
        "approve": "APPROVED",
        "request-changes": "CHANGES_REQUESTED",
        "comment": "COMMENTED",
    }[verdict]  # type: ignore[assignment]
    pr = forge.get_pr(number)
    if state != "COMMENTED" and who.lower() == pr.author.lower():
        raise UsageError(f"{who} opened PR #{number} and cannot review it as {verdict}")
    r = forge.review(number, who, state, body)
    maint = who.lower() in {m.lower() for m in policy.maintainers}
    console().print(
        f"PR #{number}: {who} {state.lower().replace('_', ' ')} at {r.commit[:10]}"
        + ("" if maint else " [yellow](not a maintainer in the policy: it will not count)")
    )


@click.group("ci")
def ci_group() -> None:
    """The local forge's CI runner."""


@ci_group.command("run")
@policy_option
@click.option("--pr", "numbers", type=int, multiple=True, help="Only this PR (repeatable).")
@click.option("--force", is_flag=True, help="Run again even if the head already has a result.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds per run.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ci_run_command(
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
    from stablectl.forge.localci import needs_run, report, run_ci

    policy = load_policy(policy_file)
    command = policy.checks.test_command
    if not command:
        raise UsageError(f"{policy_file}: checks.test_command is not set; nothing to run")
    state_dir = obj(ctx).state_dir
    forge = _local(open_forge(policy, state_dir), "stablectl ci run")
    # Draft PRs carry conflict markers: their tests would only fail. Name one with --pr to run
    # it anyway.
    prs = (
        [forge.get_pr(n) for n in numbers]
        if numbers
        else [p for p in forge.list_prs() if not p.draft]
    )
    results = []
    con = console()
    for pr in prs:
        if pr.state != "open":
            raise UsageError(f"PR #{pr.number} is {pr.state}; CI runs on open PRs")
        if not force and not needs_run(forge, pr):
            continue
        if not as_json:
            con.print(f"PR #{pr.number} {pr.head_sha[:10]}: {escape(command)} …")
        res = run_ci(forge, command, state_dir / "ci-logs", pr, timeout=timeout)
        report(forge, pr, res, policy.label("tests-failed"))
        results.append(res)
        if not as_json:
            style = "green" if res.conclusion == "success" else "red"
            con.print(f"  [{style}]{res.conclusion}[/{style}] in {res.seconds:.1f}s, log {res.log}")
    if as_json:
        print_json(
            {
                "runs": [
                    {
                        "pr": r.pr,
                        "sha": r.sha,
                        "conclusion": r.conclusion,
                        "seconds": round(r.seconds, 3),
                        "log": str(r.log),
                        "exit": r.returncode,
                    }
                    for r in results
                ]
            }
        )
    elif not results:
        con.print("nothing to run: every open PR head has a result (use --force to rerun)")
    ctx.exit(1 if any(r.conclusion != "success" for r in results) else 0)
