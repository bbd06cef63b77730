"""`stablectl policy check|schema`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stablectl.cli.context import obj, open_workspace
from stablectl.cli.output import console, print_json
from stablectl.errors import PolicyError, StablectlError
from stablectl.policy import json_schema, load_policy, semantic_error


@click.group("policy")
def policy() -> None:
    """Validate a policy file, or print its JSON Schema."""


@policy.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
@click.option(
    "--no-repo",
    is_flag=True,
    help="Skip checks that need the upstream cache (tags, branches exist).",
)
@click.pass_context
def check(ctx: click.Context, file: Path, as_json: bool, no_repo: bool) -> None:
    """Check FILE; print every problem as FILE:LINE:COL: field.path: message.

    \b
    Structure, types and regular expressions are always checked. When the upstream cache
    exists (after a first `stablectl plan`), the base tags and source branches are checked
    to exist upstream too.

    \b
    Example:
      stablectl policy check policies/cpython.yaml
    """
    problems: list[str] = []
    semantic = "skipped"
    try:
        policy = load_policy(file)
    except PolicyError as e:
        problems = e.problems
        policy = None
    if policy is not None and not no_repo:
        with open_workspace(policy, obj(ctx).state_dir) as ws:
            if ws.cache.exists():
                try:
                    found = ws.semantic_problems()
                    if found:
                        problems += semantic_error(file, found).problems
                    semantic = "checked"
                except StablectlError as e:
                    problems.append(f"{file}: cache: {e}")
            else:
                semantic = "no cache (run `stablectl plan` once to check tags and branches)"
    if as_json:
        print_json(
            {
                "file": str(file),
                "ok": not problems,
                "problems": problems,
                "repository_checks": semantic,
            }
        )
    else:
        for p in problems:
            click.echo(p, err=True)
        if not problems:
            console().print(f"{file}: ok (repository checks: {semantic})", markup=False)
    ctx.exit(2 if problems else 0)


@policy.command("schema")
def schema() -> None:
    """Print the policy's JSON Schema (for editors: yaml-language-server, VS Code)."""
    click.echo(json.dumps(json_schema(), indent=2))
