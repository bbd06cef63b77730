"""`stablectl verify`: audit the mirror's provenance; exit 0 when it holds, 1 when not."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import fetch_and_check, obj, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller import verify as audit
from stablectl.controller.plan import Engine
from stablectl.policy import load_policy


@click.command("verify")
@policy_option
@click.option("--series", "series", multiple=True, help="Only this series (repeatable).")
@click.option("--remote", help="The mirror to audit (default: the policy's fork.git).")
@click.option(
    "--releases",
    "releases_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory of published releases (TAG/manifest.json + artifacts); default: the "
    "state directory's.",
)
@click.option("--rebuild", is_flag=True, help="Rebuild each release's tarballs and compare.")
@click.option("--no-record", is_flag=True, help="Do not remember this state as verified.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(
    ctx: click.Context,
    policy_file: Path,
    series: tuple[str, ...],
    remote: str | None,
    releases_dir: Path | None,
    rebuild: bool,
    no_record: bool,
    as_json: bool,
) -> None:
    """Audit a stable mirror without trusting its maintainers.

    Every commit after the base tag must name (trailer) a commit upstream has, and equal its
    patch or be reported as adapted with the size of the adaptation; every release tag must be
    annotated, on the branch, at the release commit of its version, and its artifacts must
    match the manifest's SHA-256 (with --rebuild: be rebuilt bit for bit from the tag). The
    branch must fast-forward the state last verified here (STATE/verify-known.json): a
    rewritten branch or a moved tag is an error. Exit 0 when it all holds, 1 when not.

    \b
    Examples:
      stablectl verify --policy policies/cpython.yaml
      stablectl verify --policy policies/cpython.yaml --series 3.11.2 --rebuild --json
      stablectl verify --policy p.yaml --remote https://github.com/example/cpython-stable.git
    """
    policy = load_policy(policy_file)
    if remote:
        policy = policy.model_copy(update={"fork": policy.fork.model_copy(update={"git": remote})})
    state = obj(ctx).state_dir
    engine = Engine(policy, state)
    try:
        fetch_and_check(engine, policy_file, offline=False)
        wanted = [policy.get_series(n) for n in series] if series else policy.series
        report = audit.verify(
            engine,
            policy,
            wanted,
            releases_dir=releases_dir or state / "releases" / policy.project,
            rebuild=rebuild,
            record=not no_record,
        )
    finally:
        engine.close()
    if as_json:
        print_json(report.to_json())
    else:
        out = console()
        for a in report.audits:
            c = a.counts
            out.print(
                f"[bold]{escape(a.branch)}[/]: {c['backports']} backports "
                f"({c['identical']} identical to upstream, {c['adapted']} adapted), "
                f"{c['release commits']} releases, {c['infrastructure commits']} "
                f"infrastructure commits; tip {a.tip or '-'}"
            )
            for r in a.releases:
                arts = r.get("artifacts_checked")
                out.print(
                    f"  {escape(r['tag'])}: {'annotated' if r['annotated'] else 'LIGHTWEIGHT'}"
                    + (f", {arts} artifacts checked" if arts is not None else "")
                    + (", rebuilt" if r.get("rebuilt") else "")
                )
        if report.findings:
            table = Table("", "series", "what", "finding", show_lines=False)
            for f in report.findings:
                style = "bold red" if f.level == "error" else "yellow"
                table.add_row(
                    f"[{style}]{f.level}[/]", escape(f.series), escape(f.subject), escape(f.what)
                )
            out.print(table)
        out.print("[green]verified[/]" if report.ok else "[bold red]verification failed[/]")
    ctx.exit(0 if report.ok else 1)
