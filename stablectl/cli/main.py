"""The `stablectl` command: dispatch only; each command lives in its own module."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from stablectl import __version__
from stablectl.cli.context import Context
from stablectl.cli.error_log import INTERNAL_ERROR, write_log
from stablectl.cli.output import err_console
from stablectl.errors import PolicyError, StablectlError, redact

EPILOG = """\b
Examples:
  stablectl demo                               # the whole job, offline, on an example
  stablectl policy check policies/cpython.yaml # every problem as FILE:LINE:COL: field: msg
  stablectl plan --policy policies/cpython.yaml --series 3.11.2
  stablectl plan --policy p.yaml --json > plan.json
  stablectl sync --policy p.yaml --dry-run     # what sync would push, open, close, merge
  stablectl sync --policy p.yaml               # open/update/close/merge backport PRs
  stablectl prs --policy p.yaml                # backport PRs, CI state, approvals
  stablectl init --policy p.yaml               # stable branches, workflows, labels
  stablectl workflows --policy p.yaml --check  # do the fork's workflows match?
  stablectl review approve 3 --policy p.yaml --as alice   # local forge

Exit codes: 0 done, 1 failure, 2 bad usage or bad policy, 3 internal error
(a bug: the message names the log file with the traceback).

Environment: STABLECTL_STATE (state/cache directory), GITHUB_TOKEN (or the
variable forge.token_env names), STABLECTL_USER (local reviewer), NO_COLOR.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stablectl")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="STABLECTL_STATE",
    help="Where caches and local state live (default: ~/.cache/stablectl).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, debug: bool) -> None:
    """Keep a stable mirror of an upstream project: select flagged upstream fixes,
    backport them onto stable branches anchored at release tags, release point versions."""
    ctx.obj = Context(state_dir, debug)


def _register() -> None:
    """One module per command under stablectl/cli/, its function named after the command."""
    import importlib

    for name in COMMANDS:
        module = importlib.import_module(f"stablectl.cli.{name}_cmd")
        cli.add_command(getattr(module, name))


COMMANDS = (
    "policy",
    "plan",
    "sync",
    "release",
    "demo",
    "cache",
    "verify",
    "prs",
    "review",
    "ci",
    "backport",
    "skip",
    "retest",
    "workflows",
    "init",
    "export",
    "status",
    "feed",
)
_register()


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="stablectl", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        err_console().print("stablectl: aborted")
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except PolicyError as e:
        for p in e.problems:
            err_console().print(p, markup=False, soft_wrap=True)
        sys.exit(2)
    except StablectlError as e:
        if debug:
            sys.stderr.write(redact(traceback.format_exc()))
        err_console().print(redact(f"stablectl: error: {e}"), markup=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console().print("stablectl: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:
        if debug:
            sys.stderr.write(redact(traceback.format_exc()))
        try:
            where = f"details in {write_log(e, list(argv if argv is not None else sys.argv[1:]))}"
        except OSError:
            where = "run with --debug for details"
        err_console().print(
            redact(
                f"stablectl: internal error (a bug): {type(e).__name__}: {e}; {where}; "
                "please report it"
            ),
            markup=False,
            soft_wrap=True,
        )
        sys.exit(INTERNAL_ERROR)
    sys.exit(rc if isinstance(rc, int) else 0)
