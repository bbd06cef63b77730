"""The object every command receives: global options."""

from __future__ import annotations

from pathlib import Path

import click


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


def obj(ctx: click.Context) -> Context:
    found = ctx.find_object(Context)
    assert found is not None
    return found
