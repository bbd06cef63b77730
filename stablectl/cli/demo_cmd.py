"""`stablectl demo`: the whole cycle, offline, on an example upstream built on the spot."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from stablectl.cli.context import open_workspace
from stablectl.cli.output import console, print_json
from stablectl.controller.demo import Example, build_example
from stablectl.controller.missing_names import log_evidence
from stablectl.controller.sync import Syncer, SyncReport
from stablectl.forge import open_forge
from stablectl.forge.base import PullRequest
from stablectl.forge.local import LocalForge
from stablectl.forge.localci import needs_run, report, run_ci
from stablectl.gitops.signing import new_ssh_key
from stablectl.policy import Policy, load_policy

MAINTAINER = "maint"


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Build the example here (default: a new temporary directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
def demo(directory: Path | None, as_json: bool) -> None:
    """Run stablectl's whole cycle offline on an example CPython-like upstream.

    Builds an upstream (main, 3.11, 3.12, release tags, security NEWS entries, backports, a
    revert, a conflict) and a fork, writes a policy using the embedded local forge, then:
    sync (opens backport PRs, one of them a draft carrying a conflict), runs the local CI on
    every PR, approves them as the demo maintainer, and syncs again (merges them).
    Everything stays in a directory you can inspect afterwards.

    \b
    Example:
      stablectl demo --dir /tmp/stablectl-demo
    """
    root = directory or Path(tempfile.mkdtemp(prefix="stablectl-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise click.UsageError(f"{root} is not empty; give an empty or new --dir")
    example = build_example(root)
    key, allowed = release_key(root / "release-keys")
    policy_path = root / "policy.yaml"
    signing = f'release:\n  signing: {{required: true, allowed_signers: "{allowed}"}}\n'
    policy_path.write_text(example.policy_yaml().replace("release:\n", signing, 1))
    saved = {k: os.environ.get(k) for k in ("STABLECTL_SIGNING_KEY", "STABLECTL_SIGNING_FORMAT")}
    os.environ.update(STABLECTL_SIGNING_KEY=str(key), STABLECTL_SIGNING_FORMAT="ssh")
    try:
        run = _cycle(policy_path, root / "state")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if as_json:
        print_json(run.to_json(root))
        return
    _show(run, root)
    _where(run, example, policy_path)


@dataclass
class DemoRun:
    """What the demo did: its steps (as `--json` prints them), the sync reports, the PRs and
    the releases published."""

    forge: LocalForge
    policy: Policy
    state: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    reports: list[SyncReport] = field(default_factory=list)
    ci: list[dict[str, Any]] = field(default_factory=list)
    release_ci: list[dict[str, Any]] = field(default_factory=list)
    approved: list[int] = field(default_factory=list)
    release_prs: list[int] = field(default_factory=list)
    prs: list[PullRequest] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "root": str(root),
            "steps": self.steps,
            "releases": self.releases,
            "prs": [
                {
                    "number": p.number,
                    "title": p.title,
                    "state": p.state,
                    "draft": p.draft,
                    "series": p.marker.series if p.marker else None,
                }
                for p in self.prs
            ],
        }


def release_key(directory: Path) -> tuple[Path, Path]:
    """A new ssh key that signs the demo's releases, and the allowed-signers file that pins
    it (what a distribution would keep: `verify --allowed-signers`)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_ssh_key(directory / "release-key", "demo release key")
    public = key.with_name(key.name + ".pub").read_text().split()
    allowed = directory / "allowed-signers"
    allowed.write_text(f'releases@pyexample namespaces="git,file" {public[0]} {public[1]}\n')
    return key, allowed


def _cycle(policy_path: Path, state: Path) -> DemoRun:
    """sync, local CI, approve, sync (merge, propose releases), local CI on the release PRs,
    approve them, sync (merge, tag and publish), sync (nothing left to do)."""
    policy = load_policy(policy_path)
    forge = open_forge(policy, state)
    assert isinstance(forge, LocalForge)
    run = DemoRun(forge, policy, state)
    with open_workspace(policy, state, committer_time=1_700_000_000) as ws:

        def sync() -> None:
            report = Syncer(ws, forge, policy_file=str(policy_path)).run()
            run.reports.append(report)
            run.steps.append({"step": "sync", "report": _brief(report)})

        sync()
        run.ci = _run_ci(run)
        run.steps.append({"step": "ci", "runs": run.ci})
        # Backports only: the release PR follows the merges (it is re-proposed with them).
        run.approved = _approve(forge, "backport", lambda pr: not pr.draft)
        run.steps.append({"step": "approve", "as": MAINTAINER, "prs": run.approved})
        sync()
        # The release commit is the tested unit: CI runs on the release PR's head too.
        run.release_ci = _run_ci(run)
        run.steps.append({"step": "ci", "runs": run.release_ci})
        run.release_prs = _approve(forge, "release", lambda pr: pr.state == "open")
        run.steps.append({"step": "approve-release", "as": MAINTAINER, "prs": run.release_prs})
        sync()
        sync()
    run.prs = forge.list_prs("all")
    run.releases = _published(run, run.reports[2])
    return run


def _run_ci(run: DemoRun) -> list[dict[str, Any]]:
    command = run.policy.checks.test_command
    assert command
    out = []
    for pr in run.forge.list_prs():
        if not pr.draft and needs_run(run.forge, pr):
            res = run_ci(run.forge, command, run.state / "ci-logs", pr, timeout=300)
            report(
                run.forge, pr, res, run.policy.label("tests-failed"), evidence=log_evidence(res.log)
            )
            out.append({"pr": pr.number, "conclusion": res.conclusion, "log": str(res.log)})
    return out


def _approve(forge: LocalForge, kind: str, which: Callable[[PullRequest], bool]) -> list[int]:
    """Approve stablectl's open PRs of `kind` as the demo maintainer."""
    out = []
    for pr in forge.list_prs():
        mine = pr.marker is not None and pr.marker.kind == kind
        if mine and which(pr) and pr.author.lower() != MAINTAINER:
            forge.review(pr.number, MAINTAINER, "APPROVED")
            out.append(pr.number)
    return out


def _published(run: DemoRun, report: SyncReport) -> list[dict[str, Any]]:
    out = []
    for tag in sorted({a.target for a in report.applied if a.kind == "tag"}):
        published = run.forge.get_release(tag)
        d = run.state / "releases" / run.policy.project / tag
        if published is not None and (d / "SHA256SUMS").exists():
            out.append(
                {
                    "tag": tag,
                    "assets": [a.name for a in published.assets],
                    "directory": str(d),
                    "sha256sums": (d / "SHA256SUMS").read_text(),
                }
            )
    return out


def _show(run: DemoRun, root: Path) -> None:
    con = console()
    first, second, third, fourth = run.reports
    ci = run.ci
    con.print(f"[bold]stablectl demo[/bold] in {escape(str(root))}\n")
    con.print(f"1. [bold]sync[/bold]: {_counts(first)}")
    con.print(
        f"2. [bold]local CI[/bold] on {len(ci)} PR heads: "
        f"{sum(1 for r in ci if r['conclusion'] == 'success')} passed, "
        f"{sum(1 for r in ci if r['conclusion'] != 'success')} failed "
        "(the draft conflict PR carries conflict markers)"
    )
    approved = ", ".join(f"#{n}" for n in run.approved)
    con.print(f"3. [bold]approve[/bold] as {MAINTAINER}: PRs {approved}")
    con.print(f"4. [bold]sync[/bold]: {_counts(second)}")
    releases = ", ".join(f"#{n}" for n in run.release_prs)
    passed = sum(1 for r in run.release_ci if r["conclusion"] == "success")
    con.print(
        f"5. [bold]local CI[/bold] on the release PRs' heads (the commits to be tagged): "
        f"{passed} of {len(run.release_ci)} passed"
    )
    con.print(f"6. [bold]approve[/bold] the release PRs as {MAINTAINER}: {releases}")
    con.print(f"7. [bold]sync[/bold]: {_counts(third)}")
    con.print(f"8. [bold]sync[/bold] again: {_counts(fourth)}\n")
    con.print(_pr_table(run.prs))
    for r in run.releases:
        con.print(f"\n[bold]Released {r['tag']}[/bold] in {escape(str(r['directory']))}")
        for line in str(r["sha256sums"]).splitlines():
            digest, name = line.split("  ", 1)
            con.print(f"  {name}  sha256 {digest}", markup=False)
    if run.releases:
        con.print(
            "  signed (SHA256SUMS.sig and the tag) with the demo's key; check: cd DIR && "
            "sha256sum -c SHA256SUMS; manifest.json lists every fix"
        )


def _pr_table(prs: list[PullRequest]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for col in ("#", "series", "state", "title"):
        table.add_column(col, no_wrap=col != "title")
    styled = {"merged": "[green]merged[/green]", "open": "open", "closed": "[dim]closed[/dim]"}
    for p in prs:
        state_text = styled[p.state]
        if p.draft and p.state == "open":
            state_text = "[red]draft: conflict[/red]"
        series = p.marker.series if p.marker else ""
        table.add_row(str(p.number), series, state_text, escape(p.title))
    return table


def _where(run: DemoRun, example: Example, policy_path: Path) -> None:
    con = console()
    state = run.state
    s = f"stablectl --state-dir {state}"
    conflict = next((p for p in run.prs if p.draft and p.state == "open"), None)
    con.print("\nWhere to look:")
    con.print(f"  upstream repository  {example.upstream}", markup=False)
    con.print(f"  fork (stable branches) {example.fork}", markup=False)
    con.print(f"  policy               {policy_path}", markup=False)
    con.print(f"  forge (SQLite)       {state / 'forge'}", markup=False)
    con.print(f"  CI logs              {state / 'ci-logs'}", markup=False)
    con.print("Go on by hand:", markup=False)
    con.print(f"  {s} prs --policy {policy_path} --all", markup=False)
    if conflict is not None and conflict.marker is not None:
        con.print(
            f"  {s} backport {conflict.marker.source[:12]} --series "
            f"{conflict.marker.series} --policy {policy_path}   # resolve the conflict",
            markup=False,
        )
    con.print(f"  {s} sync --policy {policy_path}", markup=False)
    con.print(
        "Verify as a distribution would (a fresh state directory, the pinned key):", markup=False
    )
    con.print(
        f"  stablectl --state-dir $(mktemp -d) verify --policy {policy_path} "
        f"--releases {state / 'releases' / run.policy.project} --rebuild",
        markup=False,
    )


def _counts(r: SyncReport) -> str:
    counts: dict[str, int] = {}
    for a in r.applied:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    if not counts:
        return "nothing to do"
    names = {
        "open": "PRs opened",
        "push": "branches pushed",
        "merge": "merged",
        "close": "closed",
        "create-stable": "stable branches created",
        "delete-branch": "branches deleted",
        "update": "updated",
        "labels": "relabelled",
        "comment": "comments",
    }
    return ", ".join(f"{v} {names.get(k, k)}" for k, v in sorted(counts.items()))


def _brief(r: SyncReport) -> dict[str, Any]:
    return {
        "actions": [a.to_json() for a in r.applied],
        "problems": r.problems,
        "notices": r.notices,
    }
