"""Backporting by hand (`stablectl backport`): prepare a work tree with the cherry-pick and its
conflicts; once a maintainer resolved them, check the resolution, push it to the fix's backport
branch and open (or update) its PR, recording an adaptation's exact interdiff in the commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from stablectl.controller.identities import stablectl_prs
from stablectl.controller.sync.presentation import branch_name, closing_comment, resolved_pr_body
from stablectl.controller.workspace import Workspace
from stablectl.errors import UsageError
from stablectl.forge import fork_token, open_forge
from stablectl.forge.base import Forge, Marker, PullRequest
from stablectl.gitops.git import GitResult, git, output
from stablectl.gitops.messages import Adapted, adapted_message, backport_title
from stablectl.gitops.objects import find_commit
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Interdiff, repick
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.policy import Policy, load_policy

STATE_FILE = "stablectl-backport.json"


@dataclass(frozen=True)
class Target:
    sha: str  # the upstream commit, in full
    key: str  # the fix it belongs to (what its trailer names, else itself)
    tip: str  # the stable branch's tip on the fork
    cache: Path  # the upstream cache to clone from


@dataclass(frozen=True)
class Prepared:
    work: Path
    target: Target
    stable_branch: str
    conflicted: list[str]  # empty: the pick applied cleanly


@dataclass(frozen=True)
class Pushed:
    source: str  # the upstream commit
    head: str
    branch: str
    pr: PullRequest
    adapted_lines: int | None  # the resolution's differing lines (None: verbatim)


def _wt(work: Path, *args: str, check: bool = True) -> GitResult:
    return git(args, cwd=work, check=check, what=f"git {' '.join(args[:2])}")


def prepare(
    policy: Policy,
    policy_file: Path,
    state: Path,
    series: str,
    sha: str,
    directory: Path | None,
    *,
    offline: bool,
) -> Prepared:
    """A work tree on the stable branch's tip with `sha` cherry-picked (`-x`), conflicts
    left for the maintainer, and what `finish` needs recorded in its git directory."""
    target = resolve(policy, state, series, sha, offline=offline)
    work = (directory or Path.cwd() / f"stablectl-{series}-{target.sha[:7]}").resolve()
    if work.exists() and any(work.iterdir()):
        raise UsageError(f"{work} exists and is not empty")
    branch = branch_name(series, target.key)
    _wt(Path.cwd(), "clone", "-q", "--no-checkout", str(target.cache), str(work))
    _wt(work, "checkout", "-q", "-b", branch, target.tip)
    _wt(work, "config", "user.name", policy.identity.name)
    _wt(work, "config", "user.email", policy.identity.email)
    pick = _wt(work, "cherry-pick", "-x", target.sha, check=False)
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
    conflicted = [] if pick.returncode == 0 else _unmerged(work)
    return Prepared(work, target, policy.get_series(series).stable_branch, conflicted)


def resolve(policy: Policy, state: Path, series: str, sha: str, *, offline: bool) -> Target:
    s = policy.get_series(series)
    with Workspace(policy, state) as ws:
        if not offline:
            ws.fetch()
        repo = ws.cache.repo
        found = find_commit(repo, sha)
        if found is None:
            raise UsageError(f"no commit {sha!r} upstream (fetched into {ws.cache.path})")
        full = str(found.id)
        tip = ws.cache.fork_branch(s.stable_branch)
        if tip is None:
            raise UsageError(f"the fork has no branch {s.stable_branch}; run `stablectl sync`")
        facts = ws.index.facts(full)
        key = facts.info.cherry_picked_from[0] if facts and facts.info.cherry_picked_from else full
        return Target(full, key, tip, ws.cache.path)


def _unmerged(work: Path) -> list[str]:
    return output(_wt(work, "diff", "--name-only", "--diff-filter=U")).split()


def finish(work: Path) -> Pushed:
    """The resolution in `work`, checked (no unmerged file, no conflict marker, the
    cherry-pick trailer kept), pushed to the backport branch, its PR opened or updated; a
    resolution that differs from upstream's change records its interdiff and the PR."""
    state_path = work / ".git" / STATE_FILE
    if not state_path.exists():
        raise UsageError(f"{work} is not a work tree prepared by `stablectl backport`")
    st: dict[str, Any] = json.loads(state_path.read_text())
    if (work / ".git" / "CHERRY_PICK_HEAD").exists():
        unmerged = _unmerged(work)
        if unmerged:
            raise UsageError("still unresolved: " + ", ".join(unmerged) + " (git add them)")
        _wt(work, "-c", "core.editor=true", "cherry-pick", "--continue")
    head = output(_wt(work, "rev-parse", "HEAD")).strip()
    if head == st["onto"]:
        raise UsageError("nothing committed on top of the stable branch")
    changed = output(_wt(work, "diff", "--name-only", st["onto"], head)).split()
    marked = [p for p in changed if (work / p).is_file() and _has_markers(work / p)]
    if marked:
        raise UsageError("conflict markers left in: " + ", ".join(marked))
    msg = output(_wt(work, "log", "-1", "--format=%B"))
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
    if change.empty:
        return Pushed(st["sha"], head, st["branch"], pr, None)
    # The resolution differs from upstream's change: record the exact interdiff (its size and
    # SHA-256) and the PR where maintainers review it, in the commit itself (`stablectl
    # verify` recomputes the interdiff and checks the approval of a head carrying it).
    rec = Adapted(st["sha"], change.lines, pr.number, change.digest)
    _wt(work, "commit", "--amend", "-q", "-m", adapted_message(msg, rec))
    amended = output(_wt(work, "rev-parse", "HEAD")).strip()
    ForkPusher(work / ".git", policy.fork.git, token).push(
        [RefUpdate(f"refs/heads/{st['branch']}", amended, head)]
    )
    pr = _open_resolved(forge, policy, st, head=amended, msg=msg, existing=pr.number)
    return Pushed(st["sha"], amended, st["branch"], pr, change.lines)


def _adaptation(work: Path, head: str, source: str, path_map: dict[str, str]) -> Interdiff:
    """The exact interdiff between re-picking `source` onto the resolution's parent and the
    resolution, as verify will recompute it."""
    repo = pygit2.Repository(str(work))
    if find_commit(repo, source) is None:
        raise UsageError(f"{source[:10]} is not in {work}: cannot measure the resolution")
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
    out = output(_wt(work, "ls-remote", url, f"refs/heads/{branch}")).split()
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
    branch = series.stable_branch
    if existing is not None:  # the PR this run opened, now on the amended head
        body = resolved_pr_body(st["sha"], branch, marker, adapted=True)
        return forge.update_pr(existing, title=title, body=body)
    old = next((p for p in stablectl_prs(policy, forge) if p.head == st["branch"]), None)
    body = resolved_pr_body(st["sha"], branch, marker, supersedes=old.number if old else None)
    if old is not None:
        if not old.draft:
            return forge.update_pr(old.number, title=title, body=body)
        forge.close_pr(
            old.number,
            comment=closing_comment(
                st["series"], old.number, kind="superseded-by-hand", detail="", branch=""
            ),
        )
    labels = [policy.label("backport")]
    return forge.open_pr(st["branch"], series.stable_branch, title, body, labels=labels)
