"""`stablectl demo`: the whole cycle, offline, on an example upstream built on the spot."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.output import console, print_json
from stablectl.controller.plan import Engine
from stablectl.controller.sync import Syncer, SyncReport
from stablectl.forge import open_forge
from stablectl.forge.local import LocalForge
from stablectl.forge.localci import needs_run, report, run_ci
from stablectl.policy import load_policy
from stablectl.testing.history import build_example

MAINTAINER = "maint"


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Build the example here (default: a new temporary directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
def demo(directory: Path | None, as_json: bool) -> None:
    """Run stablectl's whole cycle offline on an example CPython-like upstream.

    Builds an upstream (main, 3.11, 3.12, release tags, security NEWS entries, backports, a
    revert, a conflict) and a fork, writes a policy using the embedded local forge, then:
    sync (opens backport PRs, one of them a draft carrying a conflict), runs the local CI on
    every PR, approves them as the demo maintainer, and syncs again (merges them).
    Everything stays in a directory you can inspect afterwards.

    \b
    Example:
      stablectl demo --dir /tmp/stablectl-demo
    """
    root = directory or Path(tempfile.mkdtemp(prefix="stablectl-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise click.UsageError(f"{root} is not empty; give an empty or new --dir")
    con = console()
    example = build_example(root)
    policy_path = root / "policy.yaml"
    policy_path.write_text(example.policy_yaml())
    state = root / "state"
    policy = load_policy(policy_path)
    forge = open_forge(policy, state)
    assert isinstance(forge, LocalForge)
    engine = Engine(policy, state, committer_time=1_700_000_000)
    steps: list[dict[str, Any]] = []
    try:
        first = Syncer(engine, forge, policy_file=str(policy_path)).run()
        steps.append({"step": "sync", "report": _brief(first)})
        ci = []
        assert policy.checks.test_command
        for pr in forge.list_prs():
            if not pr.draft and needs_run(forge, pr):
                res = run_ci(forge, policy.checks.test_command, state / "ci-logs", pr, timeout=300)
                report(forge, pr, res, policy.label("tests-failed"))
                ci.append({"pr": pr.number, "conclusion": res.conclusion, "log": str(res.log)})
        steps.append({"step": "ci", "runs": ci})
        approved = []
        for pr in forge.list_prs():
            # Backports only: the release PR follows the merges (it is re-proposed with them).
            kind = pr.marker.kind if pr.marker else ""
            if kind == "backport" and not pr.draft and pr.author.lower() != MAINTAINER:
                forge.review(pr.number, MAINTAINER, "APPROVED")
                approved.append(pr.number)
        steps.append({"step": "approve", "as": MAINTAINER, "prs": approved})
        second = Syncer(engine, forge, policy_file=str(policy_path)).run()
        steps.append({"step": "sync", "report": _brief(second)})
        release_prs = []
        for pr in forge.list_prs():
            if pr.state == "open" and pr.marker is not None and pr.marker.kind == "release":
                forge.review(pr.number, MAINTAINER, "APPROVED")
                release_prs.append(pr.number)
        steps.append({"step": "approve-release", "as": MAINTAINER, "prs": release_prs})
        syncer = Syncer(engine, forge, policy_file=str(policy_path))
        third = syncer.run()
        steps.append({"step": "sync", "report": _brief(third)})
        fourth = Syncer(engine, forge, policy_file=str(policy_path)).run()
        steps.append({"step": "sync", "report": _brief(fourth)})
    finally:
        engine.close()
    prs = forge.list_prs("all")
    releases: list[dict[str, Any]] = []
    for tag in sorted({a.target for a in third.applied if a.kind == "tag"}):
        published = forge.get_release(tag)
        d = state / "releases" / policy.project / tag
        if published is not None and (d / "SHA256SUMS").exists():
            releases.append(
                {
                    "tag": tag,
                    "assets": [a.name for a in published.assets],
                    "directory": str(d),
                    "sha256sums": (d / "SHA256SUMS").read_text(),
                }
            )
    if as_json:
        print_json(
            {
                "root": str(root),
                "steps": steps,
                "releases": releases,
                "prs": [
                    {
                        "number": p.number,
                        "title": p.title,
                        "state": p.state,
                        "draft": p.draft,
                        "series": p.marker.series if p.marker else None,
                    }
                    for p in prs
                ],
            }
        )
        return
    con.print(f"[bold]stablectl demo[/bold] in {escape(str(root))}\n")
    con.print(f"1. [bold]sync[/bold]: {_counts(first)}")
    con.print(
        f"2. [bold]local CI[/bold] on {len(ci)} PR heads: "
        f"{sum(1 for r in ci if r['conclusion'] == 'success')} passed, "
        f"{sum(1 for r in ci if r['conclusion'] != 'success')} failed "
        "(the draft conflict PR carries conflict markers)"
    )
    con.print(
        f"3. [bold]approve[/bold] as {MAINTAINER}: PRs " + ", ".join(f"#{n}" for n in approved)
    )
    con.print(f"4. [bold]sync[/bold]: {_counts(second)}")
    con.print(
        f"5. [bold]approve[/bold] the release PRs as {MAINTAINER}: "
        + ", ".join(f"#{n}" for n in release_prs)
    )
    con.print(f"6. [bold]sync[/bold]: {_counts(third)}")
    con.print(f"7. [bold]sync[/bold] again: {_counts(fourth)}\n")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("#", "series", "state", "title"):
        table.add_column(col, no_wrap=col != "title")
    for p in prs:
        state_text = {
            "merged": "[green]merged[/green]",
            "open": "open",
            "closed": "[dim]closed[/dim]",
        }[p.state]
        if p.draft and p.state == "open":
            state_text = "[red]draft: conflict[/red]"
        table.add_row(
            str(p.number), p.marker.series if p.marker else "", state_text, escape(p.title)
        )
    con.print(table)
    for r in releases:
        con.print(f"\n[bold]Released {r['tag']}[/bold] in {escape(str(r['directory']))}")
        for line in str(r["sha256sums"]).splitlines():
            digest, name = line.split("  ", 1)
            con.print(f"  {name}  sha256 {digest}", markup=False)
    if releases:
        con.print("  check: cd DIR && sha256sum -c SHA256SUMS; manifest.json lists every fix")
    s = f"stablectl --state-dir {state}"
    conflict = next((p for p in prs if p.draft and p.state == "open"), None)
    con.print("\nWhere to look:")
    con.print(f"  upstream repository  {example.upstream}", markup=False)
    con.print(f"  fork (stable branches) {example.fork}", markup=False)
    con.print(f"  policy               {policy_path}", markup=False)
    con.print(f"  forge (SQLite)       {state / 'forge'}", markup=False)
    con.print(f"  CI logs              {state / 'ci-logs'}", markup=False)
    con.print("Go on by hand:", markup=False)
    con.print(f"  {s} prs --policy {policy_path} --all", markup=False)
    if conflict is not None and conflict.marker is not None:
        con.print(
            f"  {s} backport {conflict.marker.source[:12]} --series "
            f"{conflict.marker.series} --policy {policy_path}   # resolve the conflict",
            markup=False,
        )
    con.print(f"  {s} sync --policy {policy_path}", markup=False)


def _counts(r: SyncReport) -> str:
    counts: dict[str, int] = {}
    for a in r.applied:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    if not counts:
        return "nothing to do"
    names = {
        "open": "PRs opened",
        "push": "branches pushed",
        "merge": "merged",
        "close": "closed",
        "create-stable": "stable branches created",
        "delete-branch": "branches deleted",
        "update": "updated",
        "labels": "relabelled",
        "comment": "comments",
    }
    return ", ".join(f"{v} {names.get(k, k)}" for k, v in sorted(counts.items()))


def _brief(r: SyncReport) -> dict[str, Any]:
    return {
        "actions": [a.to_json() for a in r.applied],
        "problems": r.problems,
        "notices": r.notices,
    }
