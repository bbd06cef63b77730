"""`stablectl verify`: audit the mirror's provenance; exit 0 when it holds, 1 when not."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import fetch_and_check, obj, open_workspace, policy_option
from stablectl.cli.output import console, print_json
from stablectl.controller import verify as audit
from stablectl.errors import StablectlError, UsageError
from stablectl.forge import local_forge_db, open_forge
from stablectl.forge.base import Forge
from stablectl.gitops.signing import Trust
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Policy, load_policy


def _path(p: str | None) -> Path | None:
    return Path(p).expanduser() if p else None


def _read_log(path: Path) -> JSONDoc:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not a release log: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a release log (a JSON object is expected)")
    return data


def _review_forge(policy: Policy, state: Path) -> Forge | str:
    """The forge to read reviews of adapted commits' PRs and of release PRs from, or why there
    is none (a packager without a token still verifies everything else; GitHub's API reads a
    public fork's PRs and reviews without one)."""
    if policy.forge.kind == "local" and not local_forge_db(policy, state).is_file():
        return f"no local forge in {state} (--forge-state names the mirror's)"
    try:
        return open_forge(policy, state, read_only=True)
    except StablectlError as e:
        return f"the forge is not readable: {e}"


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
@click.option(
    "--commits-only",
    is_flag=True,
    help="Audit commits, tags and reviews only, not the release files (the verdict says so). "
    "Without it, a release whose files are not where --releases points is an error.",
)
@click.option("--rebuild", is_flag=True, help="Rebuild each release's tarballs and compare.")
@click.option(
    "--allowed-signers",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="ssh allowed-signers file pinning the release keys (default: release.signing).",
)
@click.option(
    "--keyring",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="OpenPGP public keyring pinning the release keys (default: release.signing).",
)
@click.option(
    "--release-log",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A releases.json kept from earlier (or fetched from the mirror's feed): every release "
    "it lists must still be on the mirror, unchanged (catches a rollback).",
)
@click.option(
    "--log-max-age",
    type=click.FloatRange(min=0),
    metavar="HOURS",
    help="Fail when the --release-log was generated longer ago than this (sync re-signs the "
    "log at every scheduled run: an older one is a frozen mirror or a replayed log).",
)
@click.option(
    "--require-signed",
    is_flag=True,
    help="Fail on any unsigned tag or SHA256SUMS (default: release.signing.required).",
)
@click.option(
    "--require-reviewed/--allow-unreviewed",
    default=None,
    help="Fail when an adaptation's review cannot be checked on the forge (default: when "
    "signing is required).",
)
@click.option(
    "--forge-state",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The state directory holding the mirror's local forge (forge.kind: local), to read "
    "reviews from; default: --state-dir.",
)
@click.option("--no-record", is_flag=True, help="Do not remember this state as verified.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(
    ctx: click.Context,
    policy_file: Path,
    series: tuple[str, ...],
    remote: str | None,
    releases_dir: Path | None,
    commits_only: bool,
    rebuild: bool,
    allowed_signers: Path | None,
    keyring: Path | None,
    release_log: Path | None,
    log_max_age: float | None,
    require_signed: bool,
    require_reviewed: bool | None,
    forge_state: Path | None,
    no_record: bool,
    as_json: bool,
) -> None:
    """Audit a stable mirror without trusting its maintainers.

    Needs no memory of earlier runs: every commit after the base tag must name (trailer) a
    commit fetched from upstream's URL, and re-picking that commit onto its parent must give
    exactly its tree, or the exact interdiff must be recorded (size, SHA-256, and the PR of that
    fix where a maintainer approved a head carrying it); release commits and tags must match
    one to one, numbered in order, each tag naming the previous one's object (a chain), signed
    by a pinned key when keys are pinned; every file of a release at hand must be listed in a
    signed SHA256SUMS and match it, and the manifest's fixes and CVEs are recomputed (with
    --rebuild: the tarballs are rebuilt bit for bit from the tag). A branch or tag this
    machine verified before must not have been rewritten or moved (STATE/verify-known.json).
    Exit 0 when it all holds, 1 when not.

    \b
    Examples:
      stablectl verify --policy policies/cpython.yaml
      stablectl verify --policy policies/cpython.yaml --series 3.11.2 --rebuild --json
      stablectl verify --policy p.yaml --remote https://github.com/example/cpython-stable.git \\
          --allowed-signers release-keys.allowed --require-signed --releases downloads/
    """
    policy = load_policy(policy_file)
    if remote:
        policy = policy.model_copy(update={"fork": policy.fork.model_copy(update={"git": remote})})
    state = obj(ctx).state_dir
    with open_workspace(policy, state) as ws:
        fetch_and_check(ws, policy_file, offline=False)
        report = audit.verify(
            ws,
            policy,
            [policy.get_series(n) for n in series] if series else policy.series,
            releases_dir=None
            if commits_only
            else (releases_dir or state / "releases" / policy.project),
            rebuild_tarballs=rebuild,
            record=not no_record,
            trust=_trust(policy, allowed_signers, keyring, require_signed),
            forge=_review_forge(policy, forge_state or state),
            require_reviewed=require_reviewed,
            require_through_pr=bool(require_reviewed),
            release_log=_release_log(release_log, log_max_age),
        )
    if as_json:
        print_json(report.to_json())
    else:
        _render(report)
    ctx.exit(0 if report.ok else 1)


def _trust(
    policy: Policy, allowed_signers: Path | None, keyring: Path | None, require_signed: bool
) -> Trust:
    """The pinned keys: the options', else the policy's `release.signing`."""
    signing = policy.release.signing
    return Trust(
        allowed_signers=allowed_signers or _path(signing.allowed_signers),
        openpgp_keyring=keyring or _path(signing.openpgp_keyring),
        required=require_signed or signing.required,
    )


def _release_log(path: Path | None, max_age: float | None) -> audit.ReleaseLog | None:
    return audit.ReleaseLog.read(path, _read_log(path), max_age) if path else None


def _render(report: audit.VerifyReport) -> None:
    """The report as text: per branch its counts and releases, then the findings."""
    out = console()
    for a in report.audits:
        c = a.counts
        out.print(
            f"[bold]{escape(a.branch)}[/]: {c['backports']} backports "
            f"({c['identical']} identical to upstream, {c['adapted']} adapted), "
            f"{c['release commits']} releases, {c['infrastructure commits']} "
            f"infrastructure commits; tip {a.tip or '-'}"
        )
        for ad in a.adapted:
            if ad.downstream:
                out.print(
                    f"  {ad.commit[:12]}: adapted from {escape(ad.downstream)} "
                    f"({ad.lines} lines{', reviewed in #' + str(ad.pr) if ad.pr else ''})"
                )
        for r in a.releases:
            arts, signer = r.artifacts_checked, r.signed_by
            out.print(
                f"  {escape(r.tag)}: {'annotated' if r.annotated else 'LIGHTWEIGHT'}"
                + (f", signed by {escape(signer)}" if signer else "")
                + (f", {arts} files checked" if arts is not None else "")
                + (", rebuilt" if r.rebuilt else "")
                + (", release PR checked" if r.review_checked else "")
            )
    if report.unchecked_reviews:
        out.print(
            f"[yellow]{report.unchecked_reviews} adaptation reviews NOT CHECKED[/] "
            "(no readable forge)"
        )
    if report.findings:
        table = Table("", "series", "what", "finding", show_lines=False)
        for f in report.findings:
            style = "bold red" if f.level == "error" else "yellow"
            table.add_row(
                f"[{style}]{f.level}[/]", escape(f.series), escape(f.subject), escape(f.what)
            )
        out.print(table)
    scope = (
        " (commits, tags and reviews only: release files NOT CHECKED)"
        if report.commits_only
        else ""
    )
    out.print(
        f"[green]verified{scope}[/]" if report.ok else f"[bold red]verification failed[/]{scope}"
    )
