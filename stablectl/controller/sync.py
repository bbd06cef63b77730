"""The reconcile loop: from the plan and the forge's state, plain actions, then apply them.

Nothing is remembered between runs. The picture is rebuilt each time from git (upstream, the
fork's branches) and the forge (PRs carrying stablectl's marker, comments, reviews, checks):

- a pending fix wants a branch `stablectl/<series>/<key12>` and one open PR into the stable
  branch: a clean pick (standalone on the stable tip, or stacked on the fixes it depends on),
  or, when every source conflicts, a draft PR whose commit carries git's conflict markers;
- an open PR whose fix reached the stable branch, was reverted or excluded upstream, or is no
  longer selected, is closed with a comment; its branch is deleted;
- maintainers' `/stablectl` commands are obeyed once (a reply carrying a marker records it);
- an approved, green PR is merged (see `gate.py`).

Picks are deterministic (same inputs, same SHA), PR bodies carry no timestamps, and opening a PR
for a head that already has one returns that PR: a second run finds nothing to do, and two runs
at once converge on the same branches and PRs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pygit2

from stablectl import __version__
from stablectl.controller.commands import Command, Problem, parse_commands
from stablectl.controller.gate import GateResult, evaluate_gate
from stablectl.controller.plan import Engine, Plan, PlannedFix, SeriesPlan
from stablectl.controller.workflows import TEST_WORKFLOW
from stablectl.errors import GitError, StablectlError
from stablectl.forge.base import Comment, ConflictError, Forge, Marker, PullRequest
from stablectl.gitops.messages import backport_title
from stablectl.gitops.push import ForkPusher, RefUpdate
from stablectl.policy import DEFAULT_LABELS, Policy, Series
from stablectl.templates import render

ActionKind = Literal[
    "create-stable",
    "push",
    "open",
    "update",
    "labels",
    "close",
    "delete-branch",
    "comment",
    "merge",
    "skip",
    "retest",
    "tag",
    "release",
]
NEWS_GLOB = "Misc/NEWS.d/next/*"


@dataclass
class Action:
    kind: ActionKind
    series: str
    target: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "series": self.series,
            "target": self.target,
            "detail": self.detail,
        }


@dataclass
class Wanted:
    """What one pending fix should look like on the forge."""

    series: Series
    key: str
    branch: str
    head: str
    status: Literal["clean", "conflict"]
    title: str
    body: str
    labels: tuple[str, ...]
    marker: Marker
    requested_by: str | None = None


@dataclass
class SyncReport:
    plan: Plan
    actions: list[Action]
    applied: list[Action]
    problems: list[str]
    notices: list[str]
    prs: dict[str, list[dict[str, Any]]]
    api: dict[str, Any]
    dry_run: bool
    write_points: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "stablectl.sync/1",
            "stablectl": __version__,
            "dry_run": self.dry_run,
            "actions": [a.to_json() for a in self.actions],
            "applied": len(self.applied),
            "write_points": self.write_points,
            "problems": self.problems,
            "notices": self.notices,
            "prs": self.prs,
            "api": self.api,
            "plan": self.plan.to_json(),
        }


@contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "sync.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def branch_name(series: str, key: str) -> str:
    return f"stablectl/{series}/{key[:12]}"


class _Crash:
    """Test hook: STABLECTL_CRASH_AFTER=N kills the process (SIGKILL) right after its Nth
    write, to prove that the next run recovers (tests/test_sync.py)."""

    def __init__(self) -> None:
        value = os.environ.get("STABLECTL_CRASH_AFTER")
        self.after = int(value) if value and value.isdigit() else None
        self.writes = 0

    def wrote(self) -> None:
        self.writes += 1
        if self.after is not None and self.writes >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)


class Syncer:
    def __init__(
        self,
        engine: Engine,
        forge: Forge,
        *,
        policy_file: str,
        token: str | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.engine = engine
        self.forge = forge
        if engine.forge is None:
            engine.forge = forge  # label rules read the upstream PRs' labels through it
        self.policy: Policy = engine.policy
        # Only the file name goes into PR bodies: a body must not change with the directory
        # sync runs from (that would rewrite every conflict PR).
        self.policy_file = os.path.basename(policy_file)
        self.pusher = ForkPusher(engine.cache.path, self.policy.fork.git, token)
        self.now = now
        self.crash = _Crash()
        forge.stats.after_write = self.crash.wrote
        self.problems: list[str] = []
        self.notices: list[str] = []
        self.release_requests: set[str] = set()  # series asked to release now (manual)

    # ------------------------------------------------------------------ view

    def run(
        self, *, dry_run: bool = False, series: list[str] | None = None, fetch: bool = True
    ) -> SyncReport:
        # Runs sharing a state directory (one machine) take turns: they share the cache and,
        # with the local forge, the forge itself. Runs on different machines need no lock.
        with state_lock(self.engine.state_dir):
            return self._run(dry_run=dry_run, series=series, fetch=fetch)

    def _run(self, *, dry_run: bool, series: list[str] | None, fetch: bool) -> SyncReport:
        if fetch:
            self.engine.fetch()
        prs = self.forge.list_prs("all")
        mine = [p for p in prs if p.marker is not None and p.marker.kind == "backport"]
        requests, cmd_actions = self._commands(mine)
        plan = self.engine.plan(series)
        actions: list[Action] = list(cmd_actions)
        wanted_all: list[Wanted] = []
        for sp in plan.series:
            if not sp.selection.branch_exists:
                actions.append(
                    Action(
                        "create-stable",
                        sp.series.name,
                        sp.series.stable_branch,
                        f"create at {sp.series.base} {sp.selection.base_sha[:10]}",
                        {"sha": sp.selection.base_sha},
                    )
                )
            wanted = self._wanted(sp, requests, mine)
            wanted_all += wanted
            actions += self._reconcile(sp, wanted, mine, cmd_actions)
        applied: list[Action] = []
        if not dry_run:
            applied = self._apply(actions)
            merges = self._gate(plan, wanted_all, mine)
            applied += self._apply(merges)
            actions += merges
            done = self._releases(plan, prs, dry_run=False)
            applied += done
            actions += done
            self._refresh_feed(series, published=any(a.kind == "release" for a in done))
        else:
            actions += self._gate(plan, wanted_all, mine)
            actions += self._releases(plan, prs, dry_run=True)
        pr_view = self._pr_view(self.forge.list_prs("all") if applied else prs)
        return SyncReport(
            plan,
            actions,
            applied,
            self.problems + plan.errors,
            self.notices,
            pr_view,
            self.forge.stats.as_dict(),
            dry_run,
            self.crash.writes,
        )

    def _refresh_feed(self, series: list[str] | None, *, published: bool) -> None:
        """Rewrite status.json, feed.atom and index.html (`release.feed`) after a release,
        or when they are not there yet. A failure here is a problem, not an abort: the
        release itself is done."""
        feed = self.policy.release.feed
        if feed is None:
            return
        out = Path(feed) if Path(feed).is_absolute() else self.engine.state_dir / feed
        if not published and (out / "status.json").is_file():
            return
        from stablectl.controller.status import collect, write_feed

        try:
            plan = self.engine.plan(series)  # after this run's merges and releases
            data = collect(
                self.policy,
                plan,
                self.engine.cache.repo,
                self.engine.cache.fork_branch,
                self.forge,
                self.engine.state_dir / "releases" / self.policy.project,
            )
            write_feed(data, out)
            self.notices.append(f"feed refreshed in {out}")
        except (StablectlError, OSError) as e:
            self.problems.append(f"feed not refreshed: {e}")

    def _fork_branch(self, name: str) -> str | None:
        return self.engine.cache.fork_branch(name)

    # ------------------------------------------------------------------ commands

    def _commands(
        self, mine: list[PullRequest]
    ) -> tuple[dict[tuple[str | None, str], str], list[Action]]:
        """Requests to honour (series or None → sha → maintainer) and actions for commands not
        answered yet. A command is answered once: the reply carries its comment id."""
        since = self.now() - dt.timedelta(days=self.policy.commands.lookback_days)
        comments = self.forge.comments_since(since)
        answered = {
            m.extra.get("reply")
            for c in comments
            if (m := Marker.parse(c.body)) is not None and m.kind == "reply"
        }
        maintainers = {m.lower() for m in self.policy.maintainers}
        by_number = {p.number: p for p in mine}
        requests: dict[tuple[str | None, str], str] = {}
        actions: list[Action] = []
        for c in comments:
            if Marker.parse(c.body) is not None:
                continue  # stablectl's own comments
            for cmd in parse_commands(c.body):
                done = str(c.id) in answered
                allowed = c.user.lower() in maintainers
                if isinstance(cmd, Problem):
                    if not done and allowed:
                        actions.append(self._reply(c, "reply-error", cmd.text))
                    continue
                if not allowed:
                    if not done:
                        actions.append(
                            self._reply(
                                c, "reply-refused", ", ".join(self.policy.maintainers) or "none"
                            )
                        )
                    continue
                if cmd.kind == "backport":
                    sha = self._resolve(cmd.sha or "")
                    if sha is None:
                        if not done:
                            actions.append(
                                self._reply(c, "reply-error", f"no upstream commit {cmd.sha}")
                            )
                        continue
                    pr = by_number.get(c.number)
                    series = cmd.series or (pr.marker.series if pr and pr.marker else None)
                    if series is not None and series not in {s.name for s in self.policy.series}:
                        if not done:
                            actions.append(
                                self._reply(c, "reply-error", f"no series {series!r} in the policy")
                            )
                        continue
                    requests[(series, sha)] = c.user
                    if not done:
                        actions.append(
                            self._reply(
                                c,
                                "reply-done",
                                f"`{sha[:10]}` is requested for {series or 'every series'}; "
                                "its backport PR follows in this run.",
                            )
                        )
                elif cmd.kind == "release":
                    if not done:
                        names = {x.name for x in self.policy.series}
                        if cmd.series is not None and cmd.series not in names:
                            actions.append(
                                self._reply(
                                    c, "reply-error", f"no series {cmd.series!r} in the policy"
                                )
                            )
                            continue
                        self.release_requests.update([cmd.series] if cmd.series else names)
                        actions.append(
                            self._reply(
                                c,
                                "reply-done",
                                f"a release PR for {cmd.series or 'every series'} with unreleased "
                                "fixes follows in this run.",
                            )
                        )
                elif not done:
                    actions += self._pr_command(c, cmd, by_number.get(c.number))
        return requests, actions

    def _pr_command(self, c: Comment, cmd: Command, pr: PullRequest | None) -> list[Action]:
        if pr is None or pr.marker is None:
            return [
                self._reply(
                    c, "reply-error", f"/stablectl {cmd.kind} works on stablectl's backport PRs"
                )
            ]
        if cmd.kind == "skip":
            return [
                Action(
                    "skip",
                    pr.marker.series,
                    f"#{pr.number}",
                    f"skipped by {c.user}",
                    {"pr": pr.number},
                ),
                self._reply(
                    c,
                    "reply-done",
                    "Closed; this fix will not be backported to "
                    f"{pr.base} unless the PR is reopened.",
                ),
            ]
        return [
            Action(
                "retest",
                pr.marker.series,
                f"#{pr.number}",
                f"retest by {c.user}",
                {"pr": pr.number, "sha": pr.head_sha},
            ),
            self._reply(c, "reply-done", f"Tests requested again on {pr.head_sha[:10]}."),
        ]

    def _reply(self, c: Comment, kind: str, detail: str) -> Action:
        marker = Marker("reply", "", extra={"reply": str(c.id)}).render()
        body = render(
            "comment.md.j2", kind=kind, user=c.user, detail=detail, branch="", marker=marker
        )
        return Action(
            "comment",
            "",
            f"#{c.number}",
            f"{kind} to {c.user} (comment {c.id})",
            {"number": c.number, "body": body},
        )

    def _resolve(self, sha: str) -> str | None:
        repo = self.engine.cache.repo
        try:
            obj = repo.revparse_single(sha)
            return str(obj.peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    # ------------------------------------------------------------------ desired state

    def _wanted(
        self, sp: SeriesPlan, requests: dict[tuple[str | None, str], str], mine: list[PullRequest]
    ) -> list[Wanted]:
        s = sp.series
        tip = sp.selection.tip_sha
        picker = self.engine.picker(s)
        open_by_key = {
            p.marker.original: p
            for p in mine
            if p.state == "open" and p.marker and p.marker.series == s.name
        }
        out: list[Wanted] = []
        chain: list[tuple[PlannedFix, str]] = []  # clean standalone picks so far (fix, commit)
        planned = {pf.candidate.fix.key for pf in sp.fixes}
        for pf in sp.fixes:
            if pf.status not in ("new-clean", "new-conflict"):
                if pf.status == "new-error":
                    self.problems.append(
                        f"{s.name}: {pf.candidate.fix.key[:10]} "
                        f"{pf.candidate.fix.subject}: {pf.note}"
                    )
                continue
            w = self._want_fix(sp, pf, tip, picker, chain, open_by_key)
            if w is not None:
                out.append(w)
        # Requested by a maintainer but not flagged by the policy.
        for (series, sha), user in sorted(requests.items(), key=lambda kv: kv[0][1]):
            if series not in (None, s.name):
                continue
            key = self._key_of(sha)
            if key in planned or any(w.key == key for w in out):
                continue
            w = self._want_requested(sp, sha, key, user, tip, picker, open_by_key)
            if w is not None:
                out.append(w)
        # Open PRs a maintainer asked for earlier stay wanted while the fix is pending.
        for key, pr in open_by_key.items():
            m = pr.marker
            if m is None or not m.extra.get("requested") or any(w.key == key for w in out):
                continue
            if key in planned:
                continue
            w = self._want_requested(
                sp, m.source or key, key, m.extra["requested"], tip, picker, open_by_key
            )
            if w is not None:
                out.append(w)
        return out

    def _key_of(self, sha: str) -> str:
        facts = self.engine.index.facts(sha)
        if facts is not None and facts.info.cherry_picked_from:
            return facts.info.cherry_picked_from[0]
        return sha

    def _want_fix(
        self,
        sp: SeriesPlan,
        pf: PlannedFix,
        tip: str,
        picker: Any,
        chain: list[tuple[PlannedFix, str]],
        open_by_key: dict[str, PullRequest],
    ) -> Wanted | None:
        fix = pf.candidate.fix
        s = sp.series
        existing = open_by_key.get(fix.key)
        depends: list[str] = []
        status: Literal["clean", "conflict"] = "clean"
        head: str | None = None
        conflicts = []
        source = pf.chosen.source if pf.chosen else (pf.attempts[0].source if pf.attempts else None)
        if source is None:
            return None
        if pf.chosen is not None and self._overlaps(source.sha, chain):
            # Earlier pending fixes touch the same files: fixes need not commute (a later one
            # may change lines an earlier one adds), so it is stacked on them and merged after
            # them (found on Debian's python3.11 queue: CVE-2026-4519's three webbrowser fixes).
            head, depends = self._stack(pf, source.sha, tip, picker, chain)
            if head is None:
                status = "conflict"
                conflicts = pf.attempts[0].result.conflicts if pf.attempts else []
            else:
                chain.append((pf, head))
        elif pf.chosen is not None:
            head = self._keep_existing(existing, source.sha, tip)
            if head is None:
                res = picker.pick(source.sha, tip)
                if res.ok and res.commit:
                    head = res.commit
                elif res.ok:  # empty standalone: nothing to backport on its own
                    return None
                else:
                    # Depends on earlier fixes of the chain: stack it on those it shares paths
                    # with (the PR then shows them too; merge them first).
                    head, depends = self._stack(pf, source.sha, tip, picker, chain)
                    if head is None:
                        status, conflicts = "conflict", res.conflicts
            if head is not None and status == "clean":
                chain.append((pf, head))
        else:
            status = "conflict"
            conflicts = pf.attempts[0].result.conflicts if pf.attempts else []
        if status == "conflict":
            head = self._keep_existing(existing, source.sha, tip, conflict=True)
            if head is None:
                message = (
                    f"[conflict] {backport_title(s.stable_branch, fix.subject)}\n\n"
                    f"stablectl could not pick {source.sha} cleanly onto {s.stable_branch}.\n"
                    "This commit carries git's conflict markers: DO NOT MERGE.\n"
                    f"Resolve with: stablectl backport {source.sha[:12]} --series {s.name}\n"
                )
                head = picker.conflict_commit(source.sha, tip, message)
            if head is None:
                self.problems.append(
                    f"{s.name}: {fix.key[:10]} conflicts and git >= 2.38 is needed to show the "
                    f"conflict in a draft PR; run `stablectl backport {source.sha[:12]} "
                    f"--series {s.name}`"
                )
                return None
        assert head is not None
        return self._wanted_obj(
            s,
            fix.key,
            source.sha,
            source.kind,
            source.branch,
            head,
            status,
            pf,
            conflicts,
            depends,
            None,
        )

    def _keep_existing(
        self, pr: PullRequest | None, source: str, tip: str, conflict: bool = False
    ) -> str | None:
        """An open PR's head stays as long as it was stablectl's, picks the same source, has
        the same outcome and still sits on the stable branch's history: no needless pushes
        that would make approvals stale and rerun CI."""
        if pr is None or pr.marker is None:
            return None
        m = pr.marker
        if m.source != source or m.extra.get("pushed") != pr.head_sha:
            return None
        if (m.extra.get("status") == "conflict") != conflict:
            return None
        repo = self.engine.cache.repo
        try:
            head = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit)
        except (KeyError, ValueError):
            return None
        parent = str(head.parents[0].id) if head.parents else None
        if parent is None:
            return None
        if parent == tip:
            return pr.head_sha
        if self.policy.label("tests-failed") in pr.labels:
            # Its tests failed on an older tip: picked again onto the moved one, so a fix that
            # needs one merged since (found on Debian's queue: gh-143925's test imports a
            # helper gh-143916 adds to test.support) is tested again, not stuck.
            return None
        if not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=parent)):
            return None
        if conflict:
            return pr.head_sha
        # The stable branch moved on (other backports merged): the head stays only if it
        # still applies there, as the forge's rebase merge will need.
        res = self.engine.picker().pick(pr.head_sha, tip)
        return pr.head_sha if res.ok else None

    def _overlaps(self, source: str, chain: list[tuple[PlannedFix, str]]) -> bool:
        facts = self.engine.index.facts(source)
        mine = set(facts.paths) if facts is not None else set()
        for dep, _commit in chain:
            src = dep.chosen.source.sha if dep.chosen else None
            f = self.engine.index.facts(src) if src else None
            if f is not None and mine & set(f.paths):
                return True
        return False

    def _stack(
        self,
        pf: PlannedFix,
        source: str,
        tip: str,
        picker: Any,
        chain: list[tuple[PlannedFix, str]],
    ) -> tuple[str | None, list[str]]:
        facts = self.engine.index.facts(source)
        paths = set(facts.paths) if facts is not None else set()
        deps: list[PlannedFix] = []
        for dep, _commit in reversed(chain):  # what it overlaps, and what those overlap
            src = dep.chosen.source.sha if dep.chosen else None
            f = self.engine.index.facts(src) if src else None
            if f is not None and paths & set(f.paths):
                deps.insert(0, dep)
                paths |= set(f.paths)
        if not deps:
            return None, []
        onto = tip
        for dep in deps:
            assert dep.chosen is not None
            r = picker.pick(dep.chosen.source.sha, onto)
            if not (r.ok and r.commit):
                return None, []
            onto = r.commit
        r = picker.pick(source, onto)
        if not (r.ok and r.commit):
            return None, []
        return r.commit, [d.candidate.fix.key for d in deps]

    def _want_requested(
        self,
        sp: SeriesPlan,
        sha: str,
        key: str,
        user: str,
        tip: str,
        picker: Any,
        open_by_key: dict[str, PullRequest],
    ) -> Wanted | None:
        s = sp.series
        existing = open_by_key.get(key)
        head = self._keep_existing(existing, sha, tip)
        status: Literal["clean", "conflict"] = "clean"
        conflicts = []
        if head is None:
            res = picker.pick(sha, tip)
            if res.ok and res.commit:
                head = res.commit
            elif res.ok:
                self.notices.append(f"{s.name}: requested {sha[:10]} changes nothing there")
                return None
            else:
                status, conflicts = "conflict", res.conflicts
                head = self._keep_existing(
                    existing, sha, tip, conflict=True
                ) or picker.conflict_commit(
                    sha,
                    tip,
                    f"[conflict] backport of {sha}\n\nDO NOT MERGE: carries conflict markers.\n",
                )
        if head is None:
            self.problems.append(f"{s.name}: requested {sha[:10]} cannot be picked")
            return None
        return self._wanted_obj(
            s, key, sha, "requested", None, head, status, None, conflicts, [], user
        )

    def _wanted_obj(
        self,
        s: Series,
        key: str,
        source: str,
        source_kind: str,
        source_branch: str | None,
        head: str,
        status: Literal["clean", "conflict"],
        pf: PlannedFix | None,
        conflicts: list[Any],
        depends: list[str],
        requested_by: str | None,
    ) -> Wanted:
        p = self.policy
        facts = self.engine.index.facts(source)
        subject = (
            pf.candidate.fix.subject
            if pf
            else (facts.message.splitlines()[0] if facts and facts.message else key)
        )
        security = bool(pf and pf.candidate.fix.security)
        labels = {p.label("backport")}
        if security:
            labels.add(p.label("security"))
        if status == "conflict":
            labels.add(p.label("conflicts"))
        extra = {"pushed": head, "status": status}
        if depends:
            extra["depends"] = ",".join(d[:12] for d in depends)
        if requested_by:
            extra["requested"] = requested_by
        marker = Marker("backport", s.name, original=key, source=source, extra=extra)
        web = p.upstream.web_url or (
            f"https://github.com/{p.upstream.forge}" if p.upstream.forge else None
        )

        def link(sha: str) -> str:
            return f"[`{sha[:10]}`]({web}/commit/{sha})" if web else f"`{sha[:10]}`"

        fix = pf.candidate.fix if pf else None
        why = (
            pf.note
            if pf and pf.note
            else f"first source in preference order ({', '.join(s.sources)})"
            if pf
            else f"requested by @{requested_by}"
        )
        ctx = {
            "subject": subject,
            "original_link": link(fix.original or fix.key) if fix else link(key),
            "pr_link": (f"[GH-{fix.pr}]({web}/pull/{fix.pr})" if web else f"GH-{fix.pr}")
            if fix and fix.pr
            else "",
            "source_sha": source,
            "source_link": link(source),
            "source_kind": source_kind + (f" on {source_branch}" if source_branch else ""),
            "why": why,
            "flags": [{"rule": h.rule, "reason": h.reason} for h in fix.flags]
            if fix
            else [{"rule": "requested", "reason": f"/stablectl backport by {requested_by}"}],
            "security": security,
            "cves": fix.cves if fix else [],
            "issues": fix.issues if fix else [],
            "requested_by": requested_by,
            "depends": [link(d) for d in depends],
            "conflicts": conflicts,
            "news": self._news(source),
            "status": status,
        }
        body = render(
            "pr_body.md.j2",
            fix=ctx,
            series=s.name,
            branch=s.stable_branch,
            policy_file=self.policy_file,
            version=__version__,
            marker=marker.render(),
        )
        title = backport_title(s.stable_branch, subject)
        if status == "conflict":
            title = "[conflict] " + title
        return Wanted(
            s,
            key,
            branch_name(s.name, key),
            head,
            status,
            title,
            body,
            tuple(sorted(labels)),
            marker,
            requested_by,
        )

    def _news(self, sha: str) -> list[dict[str, str]]:
        facts = self.engine.index.facts(sha)
        if facts is None:
            return []
        globs = [NEWS_GLOB] + [g for r in self.policy.flags for g in (r.paths or [])]
        repo = self.engine.cache.repo
        out = []
        commit = repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit)
        for path in facts.written_paths:
            if not any(fnmatch.fnmatchcase(path, g) for g in globs):
                continue
            try:
                blob = commit.tree[path]
            except KeyError:
                continue
            data = bytes(repo[blob.id].read_raw())[:4000]
            out.append({"path": path, "text": data.decode("utf-8", "replace").strip()})
        return out[:3]

    # ------------------------------------------------------------------ reconcile

    def _reconcile(
        self,
        sp: SeriesPlan,
        wanted: list[Wanted],
        mine: list[PullRequest],
        cmd_actions: list[Action],
    ) -> list[Action]:
        s = sp.series
        skip_label = self.policy.label("skip")
        skipping = {a.data["pr"] for a in cmd_actions if a.kind == "skip"}
        ours = [p for p in mine if p.marker and p.marker.series == s.name]
        open_by_key: dict[str, PullRequest] = {}
        for p in ours:
            if p.state == "open" and p.number not in skipping:
                assert p.marker is not None
                if p.marker.original in open_by_key:  # a duplicate from an old race: keep one
                    self.notices.append(
                        f"{s.name}: PR #{p.number} duplicates "
                        f"#{open_by_key[p.marker.original].number}"
                    )
                    continue
                open_by_key[p.marker.original] = p
        skipped = {
            p.marker.original
            for p in ours
            if p.marker and p.state == "closed" and skip_label in p.labels
        }
        skipped |= {p.marker.original for p in ours if p.number in skipping and p.marker}
        actions: list[Action] = []
        wanted_keys = set()
        for w in wanted:
            wanted_keys.add(w.key)
            pr = open_by_key.get(w.key)
            if pr is None and w.key in skipped and not w.requested_by:
                self.notices.append(f"{s.name}: {w.key[:10]} skipped by a maintainer")
                continue
            current = self._fork_branch(w.branch)
            human = (
                pr is not None
                and pr.marker is not None
                and (
                    pr.marker.extra.get("pushed") != pr.head_sha
                    or pr.marker.extra.get("manual") == "1"
                )
            )
            if pr is not None and human:
                self.notices.append(
                    f"{s.name}: PR #{pr.number} has a maintainer's commits; "
                    "stablectl leaves its branch alone"
                )
                continue
            if pr is not None and pr.draft and w.status == "clean":
                # GitHub's REST API cannot mark a draft ready: supersede it with a new PR.
                actions.append(
                    Action(
                        "push",
                        s.name,
                        w.branch,
                        f"{w.head[:10]} (now clean)",
                        {"ref": w.branch, "new": w.head, "old": current},
                    )
                )
                actions.append(
                    Action(
                        "close",
                        s.name,
                        f"#{pr.number}",
                        "superseded: now clean",
                        {
                            "pr": pr.number,
                            "comment_kind": "superseded",
                            "comment_detail": "the new PR below",
                            "branch": None,
                        },
                    )
                )
                actions.append(self._open(w))
                continue
            if current != w.head:
                actions.append(
                    Action(
                        "push",
                        s.name,
                        w.branch,
                        f"{w.head[:10]} ({w.status})",
                        {"ref": w.branch, "new": w.head, "old": current},
                    )
                )
            if pr is None:
                actions.append(self._open(w))
                continue
            if pr.title != w.title or pr.body != w.body:
                actions.append(
                    Action(
                        "update",
                        s.name,
                        f"#{pr.number}",
                        "title/body",
                        {
                            "pr": pr.number,
                            "title": w.title,
                            "body": w.body,
                            "test_sha": w.head
                            if w.status == "clean" and current != w.head
                            else None,
                        },
                    )
                )
            own = self._own_labels()
            if tuple(sorted(lb for lb in pr.labels if lb in own)) != w.labels:
                actions.append(
                    Action(
                        "labels",
                        s.name,
                        f"#{pr.number}",
                        ", ".join(w.labels),
                        {"pr": pr.number, "labels": list(w.labels)},
                    )
                )
        # Open PRs nobody wants any more.
        states = {pf.candidate.fix.key: pf for pf in sp.fixes}
        for key, pr in open_by_key.items():
            if key in wanted_keys:
                continue
            pf = states.get(key)
            if pf is None:
                kind, detail = "closed-unselected", "no flag rule matches it now"
            elif pf.status in ("applied", "in-base", "new-empty"):
                kind, detail = "closed-applied", pf.candidate.reason or pf.status
            elif pf.status == "reverted":
                kind, detail = "closed-reverted", pf.candidate.reason
            elif pf.status == "excluded":
                kind, detail = "closed-excluded", pf.candidate.reason
            else:
                continue  # pending but not wanted (error): leave it, the problem is reported
            actions.append(
                Action(
                    "close",
                    s.name,
                    f"#{pr.number}",
                    kind,
                    {
                        "pr": pr.number,
                        "comment_kind": kind,
                        "comment_detail": detail,
                        "branch": pr.head,
                    },
                )
            )
        # Branches nobody wants: stablectl's own, with no open PR and no wanted fix.
        keep_branches = {branch_name(s.name, k) for k in wanted_keys} | {
            p.head for p in ours if p.state == "open"
        }
        prefix = f"stablectl/{s.name}/"
        for b in self.engine.cache.fork_branches(prefix):
            if b not in keep_branches and not any(a.data.get("branch") == b for a in actions):
                actions.append(
                    Action(
                        "delete-branch",
                        s.name,
                        b,
                        "no open PR",
                        {"ref": b, "old": self._fork_branch(b)},
                    )
                )
        return actions

    def _own_labels(self) -> set[str]:
        """The labels sync decides; `tests-failed` is the CI's verdict and stays as CI set it
        (sync used to strip it on its next run)."""
        roles = {*DEFAULT_LABELS, *self.policy.labels} - {"tests-failed"}
        return {self.policy.label(r) for r in roles}

    def _open(self, w: Wanted) -> Action:
        return Action(
            "open",
            w.series.name,
            w.branch,
            w.title,
            {
                "head": w.branch,
                "base": w.series.stable_branch,
                "title": w.title,
                "body": w.body,
                "draft": w.status == "conflict",
                "labels": list(w.labels),
                "test_sha": w.head if w.status == "clean" else None,
            },
        )

    # ------------------------------------------------------------------ gate

    def _gate(self, plan: Plan, wanted: list[Wanted], mine: list[PullRequest]) -> list[Action]:
        """Merge open, clean, approved and green PRs (the forge rebases each onto the tip the
        previous merge left; one that no longer applies is reported, not forced)."""
        out: list[Action] = []
        wanted_keys = {(w.series.name, w.key) for w in wanted}
        for sp in plan.series:
            s = sp.series
            if not sp.selection.branch_exists:
                continue
            candidates = [
                p
                for p in mine
                if p.state == "open"
                and p.marker
                and p.marker.series == s.name
                and not p.draft
                and p.base == s.stable_branch
                and p.marker.extra.get("status") == "clean"
                and not p.marker.extra.get("depends")  # merged after what it is stacked on
                and (s.name, p.marker.original) in wanted_keys
            ]
            if not candidates:
                continue
            approved = self.forge.approved_prs(s.stable_branch)
            for pr in candidates:
                if pr.number not in approved:
                    continue
                res: GateResult = evaluate_gate(self.policy, self.forge, pr)
                if not res.ok:
                    self.notices.append(f"{s.name}: PR #{pr.number} not merged: {res.reason}")
                    continue
                out.append(
                    Action(
                        "merge",
                        s.name,
                        f"#{pr.number}",
                        f"{res.reason}; {self.policy.release.merge_method}",
                        {
                            "pr": pr.number,
                            "head": pr.head_sha,
                            "branch": pr.head,
                            "stable": s.stable_branch,
                        },
                    )
                )
        return out

    # ------------------------------------------------------------------ apply

    def _apply(self, actions: list[Action]) -> list[Action]:
        done: list[Action] = []
        # Branch updates first, all in one `git push` (each ref checked on its own); a PR is
        # then opened only for a branch that made it.
        refs = [a for a in actions if a.kind in ("create-stable", "push")]
        failed_refs: set[str] = set()
        if refs:
            updates = [
                RefUpdate(f"refs/heads/{a.target}", a.data["sha"], None)
                if a.kind == "create-stable"
                else RefUpdate(f"refs/heads/{a.data['ref']}", a.data["new"], a.data["old"])
                for a in refs
            ]
            failed = self.pusher.push_each(updates)
            for a, u in zip(refs, updates, strict=True):
                name = u.ref.removeprefix("refs/heads/")
                if u.ref in failed:
                    self.problems.append(f"{a.kind} {name}: refused by the fork: {failed[u.ref]}")
                    failed_refs.add(name)
                else:
                    assert u.new is not None
                    self._set_fork_ref(name, u.new)
                    done.append(a)
            self.crash.wrote()
        for a in actions:
            if a.kind in ("create-stable", "push"):
                continue
            if a.kind == "open" and a.data["head"] in failed_refs:
                continue
            try:
                self._apply_one(a)
            except ConflictError as e:
                if a.kind != "merge":
                    raise
                # Another merge of this run got there first: the next run re-picks this one
                # onto the new tip (or opens it as a conflict).
                self.notices.append(f"{a.target} not merged: {e}")
                continue
            except (StablectlError, GitError) as e:
                self.problems.append(f"{a.kind} {a.target}: {e}")
                if a.kind in ("push", "create-stable"):
                    continue
                raise
            done.append(a)
        return done

    def _apply_one(self, a: Action) -> None:
        f = self.forge
        d = a.data
        if a.kind == "delete-branch":
            self.pusher.push([RefUpdate(f"refs/heads/{d['ref']}", None, d["old"])])
            self._set_fork_ref(d["ref"], None)
            self.crash.wrote()
        elif a.kind == "open":
            pr = f.open_pr(
                d["head"], d["base"], d["title"], d["body"], draft=d["draft"], labels=d["labels"]
            )
            if d.get("test_sha"):
                self._request_tests(pr.number, d["test_sha"])
        elif a.kind == "update":
            f.update_pr(d["pr"], title=d["title"], body=d["body"])
            if d.get("test_sha"):
                self._request_tests(d["pr"], d["test_sha"])
        elif a.kind == "labels":
            # Labels sync does not decide (the CI's tests-failed, people's own) are kept as
            # they are now, not as they were when this run started (a /stablectl retest
            # earlier in the run may have cleared one).
            own = self._own_labels()
            now = f.get_pr(d["pr"]).labels
            f.set_labels(d["pr"], sorted({*d["labels"], *(lb for lb in now if lb not in own)}))
        elif a.kind == "comment":
            f.comment(d["number"], d["body"])
        elif a.kind == "close":
            marker = Marker("closing", a.series, extra={"pr": str(d["pr"])}).render()
            body = render(
                "comment.md.j2",
                kind=d["comment_kind"],
                detail=d["comment_detail"],
                branch=self._stable(a.series),
                user="",
                marker=marker,
            )
            f.close_pr(d["pr"], comment=body)
            if d.get("branch"):
                self._delete_branch(d["branch"])
        elif a.kind == "skip":
            pr = f.get_pr(d["pr"])
            f.set_labels(d["pr"], sorted({*pr.labels, self.policy.label("skip")}))
            f.close_pr(d["pr"])
        elif a.kind == "retest":
            self._retest(d["pr"], d["sha"])
        elif a.kind == "merge":
            self._merge(a)

    def _delete_branch(self, branch: str) -> None:
        old = self._fork_branch(branch)
        if old is not None:
            self.pusher.push([RefUpdate(f"refs/heads/{branch}", None, old)])
            self._set_fork_ref(branch, None)
            self.crash.wrote()

    # ------------------------------------------------------------------ releases

    def _releases(self, plan: Plan, prs: list[PullRequest], *, dry_run: bool) -> list[Action]:
        from stablectl.controller import release as rel

        out: list[Action] = []
        for sp in plan.series:
            if not sp.selection.branch_exists:
                continue
            try:
                out += self._release_series(rel, sp, prs, dry_run)
            except StablectlError as e:
                self.problems.append(f"{sp.series.name}: release: {e}")
        return out

    def _release_series(
        self, rel: Any, sp: SeriesPlan, prs: list[PullRequest], dry_run: bool
    ) -> list[Action]:
        s = sp.series
        p = self.policy
        repo = self.engine.cache.repo
        out: list[Action] = []
        rpr = next(
            (
                x
                for x in prs
                if x.state == "open"
                and x.marker is not None
                and x.marker.kind == "release"
                and x.marker.series == s.name
            ),
            None,
        )
        # 1. A reviewed release PR past its deadline is merged.
        if rpr is not None and rpr.marker is not None:
            deadline = dt.datetime.fromisoformat(rpr.marker.extra.get("deadline", "9999-01-01"))
            # Only as reviewed: stablectl's head, on the stable tip it was proposed on (fixes
            # merged since make it a different release, re-proposed below).
            ours = rpr.marker.extra.get("pushed") == rpr.head_sha and rpr.marker.extra.get(
                "onto"
            ) == self._fork_branch(s.stable_branch)
            if (
                ours
                and self.now() >= deadline
                and rpr.number in self.forge.approved_prs(s.stable_branch)
            ):
                res = evaluate_gate(p, self.forge, rpr, checks=False)
                if res.ok:
                    a = Action(
                        "merge",
                        s.name,
                        f"#{rpr.number}",
                        f"release {rpr.marker.extra.get('version')}: {res.reason}",
                        {
                            "pr": rpr.number,
                            "head": rpr.head_sha,
                            "branch": rpr.head,
                            "stable": s.stable_branch,
                        },
                    )
                    out.append(a)
                    if dry_run:
                        return out
                    self._merge(a)
                    rpr = None
                else:
                    self.notices.append(f"{s.name}: release PR #{rpr.number}: {res.reason}")
            elif ours and self.now() < deadline:
                self.notices.append(
                    f"{s.name}: release PR #{rpr.number} is under review "
                    f"until {deadline:%Y-%m-%d %H:%M} UTC"
                )
        tip = self._fork_branch(s.stable_branch)
        if tip is None:
            return out
        sr = rel.scan_series(repo, sp, tip)
        # 2. The newest release commit has its tag, artifacts and forge release.
        if sr.releases:
            n = len(sr.releases)
            out += self._publish(rel, sp, sr.releases[-1], rel.tag_of(p, s, n), prs, dry_run)
        # 3. Unreleased fixes: propose the next release when the trigger says so.
        branch = f"stablectl/release/{s.name}"
        leftover = self._fork_branch(branch) if rpr is None else None
        if leftover is not None and not sr.unreleased:
            # The branch of a merged (or closed) release PR, left by an interrupted run.
            out.append(
                Action(
                    "delete-branch",
                    s.name,
                    branch,
                    "release merged",
                    {"ref": branch, "old": leftover},
                )
            )
            if not dry_run:
                self._apply(out[-1:])
        if not sr.unreleased:
            return out
        version = rel.version_of(p, s, sr.next_n)
        tag = rel.tag_of(p, s, sr.next_n)
        head = rel.release_commit(repo, p, s, tip, version, sr.unreleased)
        quiet = dt.timedelta(hours=p.release.quiet_period_hours)
        tip_time = dt.datetime.fromtimestamp(
            repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).commit_time, dt.UTC
        )
        wanted = (
            rpr is not None
            or s.name in self.release_requests
            or (
                p.release.trigger == "security"
                and rel.unreleased_security(sr)
                and self.now() - tip_time >= quiet
            )
        )
        if not wanted:
            if p.release.trigger == "security" and rel.unreleased_security(sr):
                self.notices.append(f"{s.name}: release waits for the quiet period")
            return out
        if rpr is not None and rpr.head_sha == head:
            return out
        deadline = (self.now() + dt.timedelta(hours=p.release.review_hours)).replace(microsecond=0)
        marker = Marker(
            "release",
            s.name,
            extra={
                "version": version,
                "tag": tag,
                "pushed": head,
                "onto": tip,
                "deadline": deadline.isoformat(),
            },
        )
        body = rel.release_pr_body(p, s, version, tag, sr.unreleased, deadline, marker)
        title = f"[{s.stable_branch}] Release {version}"
        current = self._fork_branch(branch)
        push = Action(
            "push",
            s.name,
            branch,
            f"release commit {head[:10]}",
            {"ref": branch, "new": head, "old": current},
        )
        if rpr is not None:
            act = Action(
                "update",
                s.name,
                f"#{rpr.number}",
                f"release {version}: new fixes",
                {"pr": rpr.number, "title": title, "body": body},
            )
        else:
            act = Action(
                "open",
                s.name,
                branch,
                title,
                {
                    "head": branch,
                    "base": s.stable_branch,
                    "title": title,
                    "body": body,
                    "draft": False,
                    "labels": ["release"],
                    "test_sha": None,
                },
            )
        out += [push, act]
        if not dry_run:
            self._apply([push, act])
        return out

    def _publish(
        self, rel: Any, sp: SeriesPlan, rc: Any, tag: str, prs: list[PullRequest], dry_run: bool
    ) -> list[Action]:
        """Tag the release commit (once; an existing tag is never moved), build the artifacts,
        and make sure the forge release has them all."""
        cache = self.engine.cache
        p = self.policy
        out: list[Action] = []
        have = cache.peel(f"refs/fork-tags/{tag}")
        tag_obj = cache.resolve(f"refs/fork-tags/{tag}")
        if have is not None and have != rc.commit:
            raise GitError(
                f"tag {tag} exists at {have[:10]}, not at the release commit "
                f"{rc.commit[:10]}; tags are never moved: inspect the fork"
            )
        if have is None:
            out.append(
                Action("tag", sp.series.name, tag, f"on {rc.commit[:10]}", {"commit": rc.commit})
            )
            if dry_run:
                return out
            message = f"{p.project} {rc.version}\n\nPoint release of {sp.series.stable_branch}.\n"
            rel.create_tag(cache.path, p, tag, rc.commit, message)
            tag_obj = cache.resolve(f"refs/tags/{tag}")
            assert tag_obj is not None
            self.pusher.push([RefUpdate(f"refs/tags/{tag}", tag_obj, None)])
            cache.repo.references.create(
                f"refs/fork-tags/{tag}", pygit2.Oid(hex=tag_obj), force=True
            )
            cache.repo.references.delete(f"refs/tags/{tag}")
            self.crash.wrote()
        release = self.forge.get_release(tag)
        names = {a.name for a in release.assets} if release else set()
        stem = p.release.tarball.format(project=p.project, version=rc.version)
        core = {f"{stem}.tar.xz", f"{stem}.tgz", "SHA256SUMS", "manifest.json"}
        if release is not None and core <= names:
            return out  # published (building CPython's tarballs again would cost seconds)
        if dry_run:
            out.append(Action("release", sp.series.name, tag, "publish", {"tag": tag}))
            return out
        web_fork = (
            f"https://github.com/{p.fork.forge}"
            if p.fork.forge and p.forge.kind == "github"
            else None
        )
        web_up = p.upstream.web_url or (
            f"https://github.com/{p.upstream.forge}" if p.upstream.forge else None
        )
        out_dir = self.engine.state_dir / "releases" / p.project
        built = rel.build_release(
            cache.repo,
            p,
            sp,
            rc,
            tag,
            tag_obj,
            out_dir,
            self.forge.list_prs("all"),
            self.forge.checks,
            web_fork,
            web_up,
        )
        # The core files go last: a run that stops half-way is finished by the next one, which
        # looks only for them.
        missing = sorted(
            (f for f in built.files if f.name not in names), key=lambda f: f.name in core
        )
        if release is not None and not missing:
            return out
        out.append(
            Action(
                "release",
                sp.series.name,
                tag,
                f"{len(missing)} files" + ("" if release else ", new release"),
                {"tag": tag},
            )
        )
        if release is None:
            release = self.forge.create_release(tag, f"{p.project} {rc.version}", built.notes)
        for f in missing:
            ctype = {
                ".xz": "application/x-xz",
                ".tgz": "application/gzip",
                ".json": "application/json",
            }.get(f.suffix, "text/plain")
            self.forge.upload_asset(release, f.name, f.read_bytes(), ctype)
        return out

    def _stable(self, series: str) -> str:
        return self.policy.get_series(series).stable_branch if series else ""

    def _request_tests(self, number: int, sha: str) -> None:
        """On GitHub in `dispatch` mode: PRs opened with the workflow's GITHUB_TOKEN start no
        `pull_request` runs, so start stable-tests for the head and mark it pending."""
        ci = self.policy.ci
        if self.forge.kind != "github" or ci.trigger != "dispatch":
            return
        try:
            self.forge.dispatch_workflow(
                TEST_WORKFLOW, ci.control_branch, {"sha": sha, "pr": str(number)}
            )
        except StablectlError as e:
            self.problems.append(
                f"#{number}: could not start {TEST_WORKFLOW} on {ci.control_branch} ({e}); "
                "is it installed? run `stablectl init`"
            )
            return
        self.forge.set_status(sha, ci.status_name, "pending", "", "dispatched by stablectl")

    def _retest(self, number: int, sha: str) -> None:
        from stablectl.forge.local import LocalForge

        failed = self.policy.label("tests-failed")
        pr = self.forge.get_pr(number)
        if failed in pr.labels:
            self.forge.set_labels(number, [lb for lb in pr.labels if lb != failed])
        if isinstance(self.forge, LocalForge):
            from stablectl.forge.localci import CHECK_NAME

            self.forge.record_check(CHECK_NAME, sha, "queued", None, "")
        elif self.policy.ci.trigger == "dispatch":
            self._request_tests(number, sha)
        else:
            self.forge.set_status(
                sha, self.policy.ci.status_name, "pending", "", "tests requested again"
            )

    def _merge(self, a: Action) -> None:
        d = a.data
        repo = self.engine.cache.repo
        before = self._fork_branch(d["stable"])
        new = self.forge.merge(d["pr"], d["head"], self.policy.release.merge_method)
        self.engine.cache.fetch_fork(self.policy.fork.git)
        after = self._fork_branch(d["stable"])
        if (
            before
            and after
            and after != before
            and not repo.descendant_of(pygit2.Oid(hex=after), pygit2.Oid(hex=before))
        ):
            raise GitError(
                f"{d['stable']} did not move forward when merging {a.target} "
                f"({before[:10]} → {after[:10]}): stop and inspect the fork"
            )
        if after != new:
            self.notices.append(f"{a.target}: merged as {new[:10]}, fork shows {after}")
        self._delete_branch(d["branch"])

    def _set_fork_ref(self, branch: str, sha: str | None) -> None:
        self.engine.cache.set_fork_branch(branch, sha)

    # ------------------------------------------------------------------ report

    def _pr_view(self, prs: list[PullRequest]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for p in prs:
            if p.marker is None or p.marker.kind != "backport":
                continue
            out.setdefault(p.marker.series, []).append(
                {
                    "number": p.number,
                    "state": p.state,
                    "draft": p.draft,
                    "title": p.title,
                    "head": p.head,
                    "head_sha": p.head_sha,
                    "labels": list(p.labels),
                    "url": p.url,
                    "original": p.marker.original,
                    "status": p.marker.extra.get("status"),
                }
            )
        return out
