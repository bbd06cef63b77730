"""`stablectl review`: approve or comment on a PR of the local forge, as a maintainer would on
GitHub."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from stablectl.cli.context import local_forge, obj, policy_option
from stablectl.cli.output import console
from stablectl.errors import UsageError
from stablectl.forge import open_forge
from stablectl.forge.base import ReviewState
from stablectl.policy import load_policy, login_key


@click.command("review")
@click.argument("verdict", type=click.Choice(["approve", "request-changes", "comment"]))
@click.argument("number", type=int)
@policy_option
@click.option("--as", "user", help="Reviewer login (default: $STABLECTL_USER or your login).")
@click.option("--body", default="", help="Review text.")
@click.pass_context
def review(
    ctx: click.Context, verdict: str, number: int, policy_file: Path, user: str | None, body: str
) -> None:
    """Review a backport PR on the local forge (on GitHub, review on GitHub).

    The review records the PR's current head: a push after it makes it stale, as on GitHub.

    \b
    Examples:
      stablectl review approve 3 --policy p.yaml --as alice
      stablectl review request-changes 3 --policy p.yaml --as bob --body "needs a test"
    """
    policy = load_policy(policy_file)
    forge = local_forge(open_forge(policy, obj(ctx).state_dir), "stablectl review")
    who = user or os.environ.get("STABLECTL_USER") or getpass.getuser()
    state: ReviewState = {
        "approve": "APPROVED",
        "request-changes": "CHANGES_REQUESTED",
        "comment": "COMMENTED",
    }[verdict]  # type: ignore[assignment]
    pr = forge.get_pr(number)
    if state != "COMMENTED" and login_key(who) == login_key(pr.author):
        raise UsageError(f"{who} opened PR #{number} and cannot review it as {verdict}")
    r = forge.review(number, who, state, body)
    maint = policy.is_maintainer(who)
    console().print(
        f"PR #{number}: {who} {state.lower().replace('_', ' ')} at {r.commit[:10]}"
        + ("" if maint else " [yellow](not a maintainer in the policy: it will not count)")
    )
