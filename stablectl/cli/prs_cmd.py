"""`stablectl prs`: stablectl's PRs on the fork with their CI state and approvals."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import obj, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller.identities import stablectl_prs
from stablectl.forge import open_forge
from stablectl.forge.base import Forge, PullRequest
from stablectl.policy import Policy, load_policy, login_key


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
    latest: dict[str, tuple[str, str]] = {}
    for r in forge.reviews(pr.number):
        if r.state in ("APPROVED", "CHANGES_REQUESTED"):
            latest[login_key(r.user)] = (r.state, r.commit)
    approvals = sum(
        1
        for u, (s, c) in latest.items()
        if s == "APPROVED" and policy.is_maintainer(u) and c == pr.head_sha
    )
    changes = any(
        s == "CHANGES_REQUESTED" and policy.is_maintainer(u) for u, (s, _c) in latest.items()
    )
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
def prs(ctx: click.Context, policy_file: Path, show_all: bool, as_json: bool) -> None:
    """List stablectl's PRs on the fork, with CI state and maintainer approvals.

    \b
    Examples:
      stablectl prs --policy policies/cpython.yaml
      stablectl prs --policy p.yaml --all --json
    """
    policy = load_policy(policy_file)
    forge = open_forge(policy, obj(ctx).state_dir)
    prs = stablectl_prs(policy, forge, "all" if show_all else "open")
    rows = []
    for pr in prs:
        ci, appr = _summary(forge, pr, policy) if pr.state == "open" else ("", "")
        rows.append((pr, ci, appr))
    if as_json:
        print_json(
            {
                "forge": forge.kind,
                "prs": [_pr_json(pr, ci, appr) for pr, ci, appr in rows],
                "api": forge.stats.as_dict(),
            }
        )
        return
    con = console()
    if not rows:
        con.print("no stablectl PRs" + ("" if show_all else " open"))
        return
    con.print(_table(rows))


def _pr_json(pr: PullRequest, ci: str, appr: str) -> dict[str, object]:
    return {
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


def _table(rows: list[tuple[PullRequest, str, str]]) -> Table:
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
    return table
