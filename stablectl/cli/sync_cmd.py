"""`stablectl sync`: make the fork and the forge match the plan."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import fetch_and_check, obj, open_workspace, policy_option
from stablectl.cli.output import Reporter, console, in_github_actions, print_json
from stablectl.cli.plan_cmd import render as render_plan
from stablectl.controller.sync import Syncer, SyncReport
from stablectl.errors import redact
from stablectl.forge import fork_token, open_forge
from stablectl.policy import load_policy
from stablectl.templates import render
from stablectl.text import printable

_STYLE = {
    "open": "green",
    "merge": "bold green",
    "close": "yellow",
    "push": "cyan",
    "delete-branch": "dim",
    "comment": "blue",
    "skip": "yellow",
}


@click.command("sync")
@policy_option
@click.option("--series", "series", multiple=True, help="Only this series (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show the plan and the actions; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("--offline", is_flag=True, help="Use the cache as it is; do not fetch.")
@click.pass_context
def sync(
    ctx: click.Context,
    policy_file: Path,
    series: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    offline: bool,
) -> None:
    """Open, update, close and merge backport PRs so the fork matches the policy.

    Every run rebuilds its view from git and the forge; running it twice does nothing the
    second time. Pushes only stablectl's own branches (stablectl/<series>/<sha>) and
    fast-forwards stable branches. In GitHub Actions it writes a job summary and annotations.

    \b
    Examples:
      stablectl sync --policy policies/cpython.yaml --dry-run
      stablectl sync --policy policies/cpython.yaml --series 3.11.2 --json
    """
    policy = load_policy(policy_file)
    state = obj(ctx).state_dir
    reporter = Reporter(not as_json)
    with open_workspace(policy, state, progress=reporter.update) as ws:
        forge = open_forge(policy, state)
        token = fork_token(policy)
        with reporter.running():
            fetch_and_check(ws, policy_file, offline=offline)
            syncer = Syncer(ws, forge, policy_file=str(policy_file), token=token)
            report = syncer.run(dry_run=dry_run, series=list(series) or None, fetch=False)
    if as_json:
        print_json(report.to_json())
    else:
        show(report)
    if in_github_actions():
        write_actions_summary(report, state / "releases" / policy.project)
    ctx.exit(1 if report.problems else 0)


def show(report: SyncReport) -> None:
    con = console()
    if report.dry_run:
        render_plan(report.plan)
    verb = "would do" if report.dry_run else "did"
    if report.actions:
        table = Table(
            show_edge=False, pad_edge=False, title=f"actions ({verb})", title_justify="left"
        )
        for col in ("action", "series", "target", "detail"):
            table.add_column(col, overflow="fold")
        for a in report.actions:
            style = _STYLE.get(a.kind, "")
            table.add_row(
                f"[{style}]{a.kind}[/{style}]" if style else a.kind,
                a.series,
                escape(a.target),
                escape(a.detail),
            )
        con.print(table)
    else:
        con.print("nothing to do: the fork matches the policy")
    for series, prs in sorted(report.prs.items()):
        open_prs = [p for p in prs if p["state"] == "open"]
        merged = [p for p in prs if p["state"] == "merged"]
        con.print(
            f"[bold]{series}[/bold]: {len(open_prs)} open "
            f"({sum(1 for p in open_prs if p['draft'])} draft, conflicting), "
            f"{len(merged)} merged"
        )
    for n in report.notices:
        con.print(f"[dim]note:[/dim] {escape(n)}")
    for p in report.problems:
        con.print(f"[red]problem:[/red] {escape(p)}")
    api = report.api
    con.print(
        f"[dim]forge: {api['api_requests']} API requests, {api['writes']} writes, "
        f"{api['not_modified']} not modified, {api['retries']} retries[/dim]"
    )


def write_actions_summary(report: SyncReport, releases_dir: Path | None = None) -> None:
    """Markdown job summary and ::error/::warning annotations for GitHub Actions."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(redact(render("sync_summary.md.j2", report=report)))
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        # The tags this run published: the workflow builds and tests each from its tarball.
        released = sorted({a.target for a in report.applied if a.kind == "release"})
        # The SHA-256 of each SHA256SUMS this run built: the Sigstore job signs a file it
        # downloads only when it is this one (not an asset swapped in between).
        sums = {}
        for tag in released:
            sums_file = releases_dir / tag / "SHA256SUMS" if releases_dir else None
            if sums_file is not None and sums_file.is_file():
                sums[tag] = hashlib.sha256(sums_file.read_bytes()).hexdigest()
        with open(out, "a", encoding="utf-8") as f:
            f.write(f"released={json.dumps(released)}\n")
            f.write(f"released_sums={json.dumps(sums, sort_keys=True)}\n")
    for p in report.problems:
        print(f"::error title=stablectl sync::{_escape_annotation(p)}")
    for n in report.warnings:
        print(f"::warning title=stablectl sync::{_escape_annotation(n)}")


def _escape_annotation(text: str) -> str:
    """One workflow command's text: secrets redacted *before* newlines become `%0A` (the
    runner masks a multi-line secret line by line, so it cannot find one joined by `%0A`),
    control characters dropped."""
    text = printable(redact(text))
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
