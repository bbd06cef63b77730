"""`stablectl plan`: what the stable branches need; changes nothing on the fork or forge."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import fetch_and_check, obj, open_workspace, policy_option
from stablectl.cli.output import Reporter, console, err_console, print_json
from stablectl.controller.plan import Plan, PlannedFix
from stablectl.controller.selection import FixState
from stablectl.errors import StablectlError
from stablectl.forge import open_forge
from stablectl.policy import load_policy

_STYLE = {
    FixState.NEW_CLEAN: "green",
    FixState.NEW_CLEAN_PREREQ: "green",
    FixState.NEW_EMPTY: "cyan",
    FixState.NEW_CONFLICT: "bold red",
    FixState.NEW_TO_ADAPT: "bold yellow",
    FixState.NEW_ADAPTED: "yellow",
    FixState.NEW_ERROR: "bold red",
    FixState.APPLIED: "dim",
    FixState.IN_BASE: "dim",
    FixState.REVERTED: "yellow",
    FixState.EXCLUDED: "yellow",
    FixState.NOT_APPLICABLE: "magenta",
    FixState.WAITING: "yellow",
}


@click.command("plan")
@policy_option
@click.option("--series", "series", multiple=True, help="Only this series (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (schema in docs/).")
@click.option("--offline", is_flag=True, help="Use the cache as it is; do not fetch.")
@click.pass_context
def plan(
    ctx: click.Context, policy_file: Path, series: tuple[str, ...], as_json: bool, offline: bool
) -> None:
    """Show, per series, each flagged fix: state, chosen source and pick outcome.

    Fetches upstream and the fork into the local cache, selects flagged fixes, and
    cherry-picks them in memory, each on top of the previous, onto the stable tip.
    Nothing is pushed and nothing on the forge changes.

    \b
    Examples:
      stablectl plan --policy policies/cpython.yaml
      stablectl plan --policy policies/cpython.yaml --series 3.11.2 --json
    """
    policy = load_policy(policy_file)
    reporter = Reporter(not as_json)
    forge = None
    if any(r.needs_forge for r in policy.flags):
        try:  # label and issue rules read the upstream PRs and issues through the forge
            forge = open_forge(policy, obj(ctx).state_dir)
        except StablectlError as e:
            err_console().print(
                f"stablectl: label and issue rules not evaluated: {e}", markup=False
            )
    with (
        open_workspace(policy, obj(ctx).state_dir, progress=reporter.update, forge=forge) as ws,
        reporter.running(),
    ):
        fetch_and_check(ws, policy_file, offline=offline)
        plan = ws.plan(list(series) or None, on_series=reporter.update)
    if as_json:
        print_json(plan.to_json())
    else:
        render(plan)
    ctx.exit(1 if plan.errors else 0)


_KIND = {
    "own-backport": "backport",
    "sibling-backport": "sibling",
    "original": "original",
    "other": "other",
}


def _source_text(pf: PlannedFix) -> str:
    att = pf.chosen or (pf.attempts[0] if pf.attempts else None)
    if att is None:
        return ""
    src = att.source
    return f"{src.sha[:10]} {src.branch or ''} {_KIND[src.kind]}".strip()


def _detail(pf: PlannedFix) -> str:
    fx = pf.candidate.fix
    parts: list[str] = list(fx.cves)
    if fx.follows:
        parts.append(f"follow-up of {fx.follows[:10]}")
    if pf.candidate.reason:
        parts.append(pf.candidate.reason)
    if pf.note and not pf.prerequisites:  # the prerequisites are listed one by one below
        parts.append(pf.note)
    if pf.not_applicable:
        parts.append(f"not applicable: {pf.not_applicable}")
    if pf.applied:
        parts.append(f"applied: {pf.applied}")
    if pf.evidence:
        parts.append("evidence: " + "; ".join(pf.evidence))
    if pf.waits_for:
        parts.append(pf.waits_for)
    if pf.info:
        parts.append(pf.info)
    for p in pf.prerequisites:
        parts.append(f"needs upstream {p.sha[:10]} ({p.subject}) first: {p.why}")
    if pf.prerequisite_report:
        parts.append(f"prerequisites: {pf.prerequisite_report}")
    if (
        pf.status in (FixState.NEW_CONFLICT, FixState.NEW_TO_ADAPT, FixState.NOT_APPLICABLE)
        and pf.attempts
    ):
        parts.append(
            "conflicts: "
            + ", ".join(
                f"{c.path} ({c.kind}, {c.hunks} hunk{'s' if c.hunks != 1 else ''})"
                for c in pf.attempts[0].result.conflicts
            )
        )
    elif pf.status == FixState.NEW_ERROR and pf.attempts:
        parts.append(pf.attempts[0].result.error or "")
    return "; ".join(p for p in parts if p)


def render(plan: Plan) -> None:
    con = console()
    for sp in plan.series:
        sel = sp.selection
        s = sel.series
        branch = s.stable_branch + ("" if sel.branch_exists else " (not created yet)")
        con.print(
            f"[bold]{s.name}[/bold]  {branch}  base {s.base} {sel.base_sha[:10]}  "
            f"tip {sel.tip_sha[:10]}",
        )
        table = Table(show_edge=False, pad_edge=False, expand=False, show_lines=False)
        table.add_column("fix", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("source", no_wrap=True)
        table.add_column("subject · rule · detail", overflow="fold", ratio=1)
        for pf in sp.fixes:
            fx = pf.candidate.fix
            rule = ",".join(dict.fromkeys(h.rule for h in fx.flags))
            style = _STYLE.get(pf.status, "")
            status = pf.status.removeprefix("new-")
            if pf.prerequisites:
                status = f"clean +{len(pf.prerequisites)} prereq"
            detail = _detail(pf)
            text = escape(fx.subject) + f"\n[dim]{escape(rule)}"
            text += (": " + escape(detail) if detail else "") + "[/dim]"
            table.add_row(fx.key[:10], f"[{style}]{status}[/{style}]", _source_text(pf), text)
        if sp.fixes:
            con.print(table)
        else:
            con.print("  no flagged fixes")
        counts: dict[str, int] = {}
        for pf in sp.fixes:
            counts[pf.status] = counts.get(pf.status, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        con.print(f"  {len(sp.fixes)} flagged: {summary or 'none'}\n")
    for e in plan.errors:
        con.print(f"[red]error:[/red] {escape(e)}")
