"""The object every command receives: global options."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.controller.plan import Engine
from stablectl.policy import semantic_error


class Context:
    def __init__(self, state_dir: Path | None, debug: bool) -> None:
        from stablectl.controller.plan import default_state_dir

        self.state_dir = state_dir or default_state_dir()
        self.debug = debug


policy_option = click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Policy file.",
)


def fetch_and_check(engine: Engine, policy_file: Path, *, offline: bool) -> None:
    """Fetch (unless offline), then report policy problems only the repository reveals (a
    missing tag or branch) at their FILE:LINE:COL."""
    if not offline:
        engine.fetch()
    found = engine.semantic_problems()
    if found:
        raise semantic_error(policy_file, found)


def obj(ctx: click.Context) -> Context:
    found = ctx.find_object(Context)
    assert found is not None
    return found
