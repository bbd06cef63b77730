"""Maintainers' `/stablectl` comment commands: what they ask for and the answers to post.

A command is answered once: the reply carries the comment's id in its marker, so later runs
see it was handled. Only the policy's maintainers are obeyed; others get a polite refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stablectl.controller.comment_commands import Command, Problem, parse_commands
from stablectl.controller.identities import ci_comment, own_comment
from stablectl.controller.missing_names import MissingName, from_comment
from stablectl.controller.sync.actions import Action, Retest, SkipPR
from stablectl.controller.sync.presentation import reply
from stablectl.forge.base import Comment, Marker, PullRequest
from stablectl.policy import Policy

EDITED = (
    "this comment was edited after it was posted, and anyone with write access can edit a "
    "comment: commands are obeyed only as first posted. Post the command again as a new comment"
)


@dataclass
class Requests:
    """What the comments ask of this run."""

    backports: dict[tuple[str | None, str], str] = field(default_factory=dict)  # -> maintainer
    releases: set[str] = field(default_factory=set)  # series asked to release now
    actions: list[Action] = field(default_factory=list)  # replies, skips, retests
    # PR number -> names its tests miss, from the CI's `tests-failed` comment on its head
    missing: dict[int, list[MissingName]] = field(default_factory=dict)


def read_commands(
    policy: Policy,
    comments: list[Comment],
    mine: list[PullRequest],
    resolve: Callable[[str], str | None],
) -> Requests:
    """The requests to honour and the actions for commands not answered yet. `resolve` turns
    a SHA a maintainer typed into an upstream commit (None if there is none)."""
    # A reply marker counts only in the controller's own comments (anyone can type one), a
    # CI marker only in the CI's.
    answered = {
        m.extra.get("reply")
        for c in comments
        if own_comment(policy, c) and (m := Marker.parse(c.body)) is not None and m.kind == "reply"
    }
    by_number = {p.number: p for p in mine}
    out = Requests()
    for c in comments:
        marker = Marker.parse(c.body)
        pr = by_number.get(c.number)
        if (
            marker is not None
            and marker.kind == "tests-failed"
            and ci_comment(policy, c)
            and pr is not None
            and marker.extra.get("sha") == pr.head_sha
            and (names := from_comment(c.body))
        ):
            out.missing[c.number] = names
        if marker is not None:
            continue  # stablectl's own comments (and the CI's)
        for cmd in parse_commands(c.body):
            done = str(c.id) in answered
            allowed = policy.is_maintainer(c.user)
            if isinstance(cmd, Problem):  # answered for maintainers only
                if not done and allowed:
                    out.actions.append(reply(c, "reply-error", cmd.text))
            elif not allowed:
                if not done:
                    who = ", ".join(policy.maintainers) or "none"
                    out.actions.append(reply(c, "reply-refused", who))
            elif c.edited:
                # Anyone with write access can edit a maintainer's comment into a command.
                if not done:
                    out.actions.append(reply(c, "reply-error", EDITED))
            elif cmd.kind == "backport":
                _backport(
                    policy,
                    c,
                    cmd,
                    pr=by_number.get(c.number),
                    resolve=resolve,
                    done=done,
                    out=out,
                )
            elif cmd.kind == "release":
                if not done:
                    _release(policy, c, cmd, out)
            elif not done:
                out.actions += pr_command(c, cmd, by_number.get(c.number))
    return out


def _backport(
    policy: Policy,
    c: Comment,
    cmd: Command,
    *,
    pr: PullRequest | None,
    resolve: Callable[[str], str | None],
    done: bool,
    out: Requests,
) -> None:
    sha = resolve(cmd.sha or "")
    if sha is None:
        if not done:
            out.actions.append(reply(c, "reply-error", f"no upstream commit {cmd.sha}"))
        return
    series = cmd.series or (pr.marker.series if pr and pr.marker else None)
    if series is not None and series not in {s.name for s in policy.series}:
        if not done:
            out.actions.append(reply(c, "reply-error", f"no series {series!r} in the policy"))
        return
    out.backports[(series, sha)] = c.user
    if not done:
        out.actions.append(
            reply(
                c,
                "reply-done",
                f"`{sha[:10]}` is requested for {series or 'every series'}; "
                "its backport PR follows in this run.",
            )
        )


def _release(policy: Policy, c: Comment, cmd: Command, out: Requests) -> None:
    names = {x.name for x in policy.series}
    if cmd.series is not None and cmd.series not in names:
        out.actions.append(reply(c, "reply-error", f"no series {cmd.series!r} in the policy"))
        return
    out.releases.update([cmd.series] if cmd.series else names)
    out.actions.append(
        reply(
            c,
            "reply-done",
            f"a release PR for {cmd.series or 'every series'} with unreleased "
            "fixes follows in this run.",
        )
    )


def pr_command(c: Comment, cmd: Command, pr: PullRequest | None) -> list[Action]:
    """`/stablectl skip` and `/stablectl retest`, which act on the PR they are posted on."""
    if pr is None or pr.marker is None:
        return [reply(c, "reply-error", f"/stablectl {cmd.kind} works on stablectl's backport PRs")]
    series = pr.marker.series
    if cmd.kind == "skip":
        return [
            Action(series, f"#{pr.number}", f"skipped by {c.user}", SkipPR(pr.number, c.user)),
            reply(
                c,
                "reply-done",
                f"Closed; this fix will not be backported to {pr.base} unless the PR is reopened.",
            ),
        ]
    return [
        Action(series, f"#{pr.number}", f"retest by {c.user}", Retest(pr.number, pr.head_sha)),
        reply(c, "reply-done", f"Tests requested again on {pr.head_sha[:10]}."),
    ]
