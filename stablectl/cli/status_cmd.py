"""`stablectl status` (the mirror's state in the terminal) and `stablectl feed` (status.json,
an Atom feed and a static status page, ready for GitHub Pages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import fetch_and_check, obj, open_workspace, policy_option
from stablectl.cli.output import Reporter, console, err_console, print_json
from stablectl.controller.status import collect
from stablectl.errors import StablectlError
from stablectl.forge import open_forge
from stablectl.policy import load_policy


def collect_status(
    ctx: click.Context, policy_file: Path, offline: bool, quiet: bool
) -> dict[str, Any]:
    """status.json's data (shared by `status` and `feed`)."""
    policy = load_policy(policy_file)
    state = obj(ctx).state_dir
    try:
        forge = open_forge(policy, state)
    except StablectlError as e:  # the page still shows branches and releases without it
        err_console().print(f"stablectl: forge not reachable, PR states left out: {e}")
        forge = None
    reporter = Reporter(not quiet)
    with (
        open_workspace(policy, state, progress=reporter.update, forge=forge) as ws,
        reporter.running(),
    ):
        fetch_and_check(ws, policy_file, offline=offline)
        plan = ws.plan()
        return collect(
            policy,
            plan,
            ws.cache.repo,
            fork_tip=ws.cache.fork_branch,
            forge=forge,
            releases_dir=state / "releases" / policy.project,
        )


@click.command("status")
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print status.json (stablectl.status/1).")
@click.option("--offline", is_flag=True, help="Use the cache as it is; do not fetch.")
@click.pass_context
def status(ctx: click.Context, policy_file: Path, as_json: bool, offline: bool) -> None:
    """Show each series: pending fixes with their PR and CI state, what is merged but not
    released, releases, and the CVEs fixed and pending.

    \b
    Examples:
      stablectl status --policy policies/cpython.yaml
      stablectl status --policy policies/cpython.yaml --json | jq '.cves["CVE-2025-0938"]'
    """
    data = collect_status(ctx, policy_file, offline, as_json)
    if as_json:
        print_json(data)
        return
    con = console()
    for s in data["series"]:
        con.print(
            f"[bold]{escape(s['name'])}[/]  {escape(s['branch'])}  base {escape(s['base']['tag'])}"
            f"  tip {s['tip'][:10]}  releases {len(s['releases'])}"
        )
        if s["pending"]:
            t = Table("fix", "CVEs", "pick", "PR", "CI", show_edge=False, pad_edge=False)
            for f in s["pending"]:
                pr = f["pr"]
                t.add_row(
                    escape(f["subject"]),
                    ", ".join(f["cves"]) or "-",
                    f["outcome"].removeprefix("new-"),
                    (f"#{pr['number']}" + (" draft" if pr["draft"] else "")) if pr else "-",
                    (pr["ci"] or "-") if pr else "-",
                )
            con.print(t)
        for f in s["merged_unreleased"]:
            con.print(f"  merged, unreleased: {escape(f['subject'])}")
        for f in s["not_applicable"]:
            con.print(
                f"  not applicable to {escape(s['name'])}: {escape(f['subject'])}: "
                f"{escape(f['reason'])}"
            )
        for r in s["releases"][-3:]:
            cves = f", fixes {', '.join(r['cves'])}" if r["cves"] else ""
            con.print(f"  {escape(r['tag'])} {r['date'] or ''}: {len(r['fixes'])} fixes{cves}")
    con.print(f"CVEs known: {len(data['cves'])}")
