"""`stablectl demo`: the main job, offline, on an example upstream built on the spot."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from stablectl.cli.output import console, print_json
from stablectl.cli.plan_cmd import render
from stablectl.controller.plan import Engine
from stablectl.policy import load_policy
from stablectl.testing.history import build_example


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Build the example here (default: a new temporary directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def command(directory: Path | None, as_json: bool) -> None:
    """Build a CPython-like upstream and a fork, write a policy, and run the plan.

    Everything happens offline in a directory you can inspect afterwards.

    \b
    Example:
      stablectl demo --dir /tmp/stablectl-demo
    """
    root = directory or Path(tempfile.mkdtemp(prefix="stablectl-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise click.UsageError(f"{root} is not empty; give an empty or new --dir")
    example = build_example(root)
    policy_path = root / "policy.yaml"
    policy_path.write_text(example.policy_yaml())
    state = root / "state"
    engine = Engine(load_policy(policy_path), state, committer_time=1_700_000_000)
    try:
        engine.fetch()
        plan = engine.plan()
    finally:
        engine.close()
    if as_json:
        print_json({"root": str(root), "plan": plan.to_json()})
        return
    con = console()
    con.print(f"[bold]stablectl demo[/bold] in {root}\n")
    render(plan)
    con.print("Where to look:")
    con.print(f"  upstream repository  {example.upstream}", markup=False)
    con.print(f"  fork (stable branch) {example.fork}", markup=False)
    con.print(f"  policy               {policy_path}", markup=False)
    con.print(f"  cache and state      {state}", markup=False)
    con.print(
        f"  run it again:        stablectl --state-dir {state} plan --policy {policy_path}",
        markup=False,
    )
