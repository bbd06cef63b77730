"""The object every command receives: global options."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.output import err_console
from stablectl.controller.workspace import Workspace, default_state_dir
from stablectl.errors import UsageError
from stablectl.forge.base import Forge, PullRequest
from stablectl.forge.local import LocalForge
from stablectl.gitops.cache import Progress
from stablectl.policy import Policy, semantic_error


class Context:
    def __init__(self, state_dir: Path | None, debug: bool) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.debug = debug


policy_option = click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Policy file.",
)


def open_workspace(
    policy: Policy,
    state_dir: Path,
    *,
    progress: Progress | None = None,
    forge: Forge | None = None,
    committer_time: int | None = None,
) -> Workspace:
    """The one way a command opens its workspace (`with open_workspace(...) as ws:`): the
    state directory is checked once, and what of a restored or older state was discarded is
    said."""
    ws = Workspace(policy, state_dir, progress=progress, forge=forge, committer_time=committer_time)
    for note in ws.state_notes:
        err_console().print(f"note: {note}", markup=False)
    return ws


def fetch_and_check(ws: Workspace, policy_file: Path, *, offline: bool) -> None:
    """Fetch (unless offline), then report policy problems only the repository reveals (a
    missing tag or branch) at their FILE:LINE:COL."""
    if not offline:
        ws.fetch()
    found = ws.semantic_problems()
    if found:
        raise semantic_error(policy_file, found)


def obj(ctx: click.Context) -> Context:
    found = ctx.find_object(Context)
    assert found is not None
    return found


def local_forge(forge: Forge, what: str) -> LocalForge:
    """The local forge, for commands that only make sense there (reviews, the local CI)."""
    if not isinstance(forge, LocalForge):
        raise UsageError(
            f"{what} is for the local forge; on GitHub, do it on GitHub (the fork's Actions "
            "run the tests; reviews are GitHub reviews)"
        )
    return forge


def find_pr(forge: Forge, number: int) -> PullRequest:
    """Backport PR `number`, or a usage error naming it."""
    pr = forge.get_pr(number)
    if pr.marker is None or pr.marker.kind != "backport":
        raise UsageError(f"PR #{number} is not a stablectl backport PR")
    return pr
