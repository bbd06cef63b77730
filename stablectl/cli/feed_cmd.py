"""`stablectl feed`: status.json, an Atom feed and the static status page."""

from __future__ import annotations

from pathlib import Path

import click

from stablectl.cli.context import obj, policy_option
from stablectl.cli.output import console
from stablectl.cli.status_cmd import collect_status
from stablectl.controller.release_key import policy_trust
from stablectl.controller.status import write_feed
from stablectl.policy import load_policy


@click.command("feed")
@policy_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write (default: STATE/feed).",
)
@click.option("--offline", is_flag=True, help="Use the cache as it is; do not fetch.")
@click.pass_context
def feed(ctx: click.Context, policy_file: Path, out: Path | None, offline: bool) -> None:
    """Write status.json, feed.atom (releases and security backports) and index.html (the
    status page with a CVE lookup; no external resources, readable without JavaScript) into
    a directory ready to publish, e.g. on GitHub Pages.

    \b
    Examples:
      stablectl feed --policy policies/cpython.yaml --out site/
    """
    data = collect_status(ctx, policy_file, offline, quiet=True)
    directory = out or obj(ctx).state_dir / "feed"
    for path in write_feed(data, directory, policy_trust(load_policy(policy_file))):
        console().print(str(path), markup=False)
