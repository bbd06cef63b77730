"""`stablectl backport`, `skip`, `retest`: what maintainers' `/stablectl` commands do, from
the command line; `backport` also resolves conflicts by hand."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pygit2

from stablectl.cli.context import obj
from stablectl.cli.output import console
from stablectl.controller.sync import branch_name
from stablectl.controller.workspace import Workspace
from stablectl.errors import GitError, UsageError
from stablectl.forge import fork_token, open_forge
from stablectl.forge.base import Forge, Marker, PullRequest
from stablectl.gitops.messages import ADAPTED_TRAILER, Adapted, adapted_message, backport_title
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Interdiff, repick
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.policy import Policy, load_policy

STATE_FILE = "stablectl-backport.json"


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@click.command("backport")
@click.argument("sha", required=False)
@click.option("--series", help="Series to backport to.")
@click.option(
    "--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False), help="Policy file."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Work tree to prepare (default ./stablectl-<series>-<sha>).",
)
@click.option(
    "--continue",
    "cont",
    is_flag=True,
    help="After resolving: commit, push to the backport branch, update the PR.",
)
@click.option("--offline", is_flag=True, help="Do not fetch first.")
@click.pass_context
def backport(
    ctx: click.Context,
    sha: str | None,
    series: str | None,
    policy_file: Path | None,
    directory: Path | None,
    cont: bool,
    offline: bool,
) -> None:
    """Backport SHA to a series by hand: prepare a work tree with the cherry-pick (and its
    conflicts), then, once resolved, push it to the backport PR.

    \b
    Examples:
      stablectl backport 3230650 --series 3.11.2 --policy p.yaml
      cd stablectl-3.11.2-3230650 && $EDITOR Lib/ssl.py && git add -A
      stablectl backport --continue
    """
    if cont:
        _continue(ctx, directory or Path.cwd())
        return
    if not sha or not series or policy_file is None:
        raise UsageError("give SHA, --series and --policy (or --continue in a prepared tree)")
    policy = load_policy(policy_file)
    state = obj(ctx).state_dir
    target = _resolve(policy, state, series, sha, offline=offline)
    work = (directory or Path.cwd() / f"stablectl-{series}-{target.sha[:7]}").resolve()
    if work.exists() and any(work.iterdir()):
        raise UsageError(f"{work} exists and is not empty")
    branch = branch_name(series, target.key)
    _git(Path.cwd(), "clone", "-q", "--no-checkout", str(target.cache), str(work))
    _git(work, "checkout", "-q", "-b", branch, target.tip)
    _git(work, "config", "user.name", policy.identity.name)
    _git(work, "config", "user.email", policy.identity.email)
    pick = _git(work, "cherry-pick", "-x", target.sha, check=False)
    (work / ".git" / STATE_FILE).write_text(
        json.dumps(
            {
                "policy": str(policy_file.resolve()),
                "series": series,
                "sha": target.sha,
                "key": target.key,
                "branch": branch,
                "onto": target.tip,
                "state_dir": str(state.resolve()),
            }
        )
    )
    _report(work, target, policy.get_series(series).stable_branch, clean=pick.returncode == 0)


@dataclass(frozen=True)
class _Target:
    sha: str  # the upstream commit, in full
    key: str  # the fix it belongs to (what its trailer names, else itself)
    tip: str  # the stable branch's tip on the fork
    cache: Path  # the upstream cache to clone from


def _resolve(policy: Policy, state: Path, series: str, sha: str, *, offline: bool) -> _Target:
    s = policy.get_series(series)
    engine = Workspace(policy, state)
    try:
        if not offline:
            engine.fetch()
        repo = engine.cache.repo
        try:
            full = str(repo.revparse_single(sha).peel(pygit2.Commit).id)
        except (KeyError, ValueError):
            raise UsageError(
                f"no commit {sha!r} upstream (fetched into {engine.cache.path})"
            ) from None
        tip = engine.cache.fork_branch(s.stable_branch)
        if tip is None:
            raise UsageError(f"the fork has no branch {s.stable_branch}; run `stablectl sync`")
        facts = engine.index.facts(full)
        key = facts.info.cherry_picked_from[0] if facts and facts.info.cherry_picked_from else full
        return _Target(full, key, tip, engine.cache.path)
    finally:
        engine.close()


def _report(work: Path, target: _Target, stable_branch: str, *, clean: bool) -> None:
    con = console()
    if clean:
        con.print(
            f"{target.sha[:10]} applies cleanly onto {stable_branch}; review it in {work}, "
            "then `stablectl backport --continue` there to push it.",
            markup=False,
        )
        return
    conflicted = _git(work, "diff", "--name-only", "--diff-filter=U").stdout.split()
    con.print(
        f"Prepared {work}: {target.sha[:10]} onto {stable_branch} {target.tip[:10]} conflicts in:",
        markup=False,
    )
    for p in conflicted:
        con.print(f"  {p}", markup=False)
    con.print(
        "Resolve them, `git add` the files, then run there:\n  stablectl backport --continue",
        markup=False,
    )


def _continue(ctx: click.Context, work: Path) -> None:
    state_path = work / ".git" / STATE_FILE
    if not state_path.exists():
        raise UsageError(f"{work} is not a work tree prepared by `stablectl backport`")
    st: dict[str, Any] = json.loads(state_path.read_text())
    if (work / ".git" / "CHERRY_PICK_HEAD").exists():
        unmerged = _git(work, "diff", "--name-only", "--diff-filter=U").stdout.split()
        if unmerged:
            raise UsageError("still unresolved: " + ", ".join(unmerged) + " (git add them)")
        _git(work, "-c", "core.editor=true", "cherry-pick", "--continue")
    head = _git(work, "rev-parse", "HEAD").stdout.strip()
    if head == st["onto"]:
        raise UsageError("nothing committed on top of the stable branch")
    changed = _git(work, "diff", "--name-only", st["onto"], head).stdout.split()
    marked = [p for p in changed if (work / p).is_file() and _has_markers(work / p)]
    if marked:
        raise UsageError("conflict markers left in: " + ", ".join(marked))
    msg = _git(work, "log", "-1", "--format=%B").stdout
    if f"(cherry picked from commit {st['sha']})" not in msg:
        raise UsageError("the commit message lost its `(cherry picked from commit …)` trailer")
    policy = load_policy(Path(st["policy"]))
    forge = open_forge(policy, Path(st["state_dir"]))
    token = fork_token(policy)
    current = _remote_sha(work, policy.fork.git, st["branch"])
    ForkPusher(work / ".git", policy.fork.git, token).push(
        [RefUpdate(f"refs/heads/{st['branch']}", head, current)]
    )
    pr = _open_resolved(forge, policy, st, head=head, msg=msg)
    change = _adaptation(work, head, st["sha"], policy.get_series(st["series"]).path_map)
    if not change.empty:
        # The resolution differs from upstream's change: record the exact interdiff (its size
        # and SHA-256) and the PR where maintainers review it, in the commit itself (`stablectl
        # verify` recomputes the interdiff and checks the approval of a head carrying it).
        size = change.lines
        rec = Adapted(st["sha"], size, pr.number, change.digest)
        _git(work, "commit", "--amend", "-q", "-m", adapted_message(msg, rec))
        amended = _git(work, "rev-parse", "HEAD").stdout.strip()
        ForkPusher(work / ".git", policy.fork.git, token).push(
            [RefUpdate(f"refs/heads/{st['branch']}", amended, head)]
        )
        head = amended
        pr = _open_resolved(forge, policy, st, head=head, msg=msg, existing=pr.number)
        console().print(
            f"adapted: {size} changed lines differ from {st['sha'][:10]}; recorded as "
            f"{ADAPTED_TRAILER} (reviewed in #{pr.number})",
            markup=False,
        )
    console().print(f"pushed {head[:10]} to {st['branch']}; PR #{pr.number} {pr.url}", markup=False)


def _adaptation(work: Path, head: str, source: str, path_map: dict[str, str]) -> Interdiff:
    """The exact interdiff between re-picking `source` onto the resolution's parent and the
    resolution, as verify will recompute it."""
    repo = pygit2.Repository(str(work))
    try:
        repo[pygit2.Oid(hex=source)].peel(pygit2.Commit)
    except (KeyError, ValueError):
        raise UsageError(f"{source[:10]} is not in {work}: cannot measure the resolution") from None
    picker = Picker(repo, Committer("stablectl", "stablectl@localhost"), path_map=path_map)
    _outcome, change = repick(repo, picker, repo[pygit2.Oid(hex=head)].peel(pygit2.Commit), source)
    return change


def _has_markers(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines())


def _remote_sha(work: Path, url: str, branch: str) -> str | None:
    out = _git(work, "ls-remote", url, f"refs/heads/{branch}").stdout.split()
    return out[0] if out else None


def _open_resolved(
    forge: Forge,
    policy: Policy,
    st: dict[str, Any],
    *,
    head: str,
    msg: str,
    existing: int | None = None,
) -> PullRequest:
    """The resolved backport as a ready PR; a draft conflict PR for the branch is superseded
    (GitHub's REST API cannot turn a draft into a ready PR)."""
    series = policy.get_series(st["series"])
    marker = Marker(
        "backport",
        st["series"],
        original=st["key"],
        source=st["sha"],
        extra={"pushed": head, "status": "clean", "manual": "1"},
    )
    title = backport_title(series.stable_branch, msg.splitlines()[0])
    if existing is not None:  # the PR this run opened, now on the amended head
        body = (
            f"Backport of `{st['sha'][:10]}` to `{series.stable_branch}`, conflicts resolved "
            "by hand (`stablectl backport --continue`); the resolution is recorded as "
            f"`{ADAPTED_TRAILER}`.\n\n"
        )
        return forge.update_pr(existing, title=title, body=body + marker.render())
    old = next((p for p in forge.list_prs() if p.head == st["branch"]), None)
    body = (
        f"Backport of `{st['sha'][:10]}` to `{series.stable_branch}`, conflicts resolved "
        "by hand (`stablectl backport --continue`).\n\n"
    )
    if old is not None:
        body += f"Supersedes #{old.number}.\n\n"
        if not old.draft:
            return forge.update_pr(old.number, title=title, body=body + marker.render())
        forge.close_pr(
            old.number,
            comment="Conflicts resolved by hand; superseded by a new "
            "PR from the same branch.\n\n"
            + Marker("closing", st["series"], extra={"pr": str(old.number)}).render(),
        )
    labels = [policy.label("backport")]
    return forge.open_pr(
        st["branch"], series.stable_branch, title, body + marker.render(), labels=labels
    )
