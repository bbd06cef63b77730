"""Reconcile, as a pure function: the wanted PRs of one series and what the fork and the forge
show now give the actions that make them match. No git, no forge: data in, actions out
(tests/controller/sync/test_reconcile.py exercises it on plain values)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from stablectl.controller.identities import branch_key
from stablectl.controller.selection import FixState
from stablectl.controller.sync.actions import (
    Action,
    ClosePR,
    DeleteBranch,
    OpenPR,
    Push,
    SetLabels,
    UpdatePR,
)
from stablectl.controller.sync.desired import Wanted
from stablectl.controller.sync.presentation import branch_name
from stablectl.forge.base import PullRequest

# A fix's state as the plan sees it, and why.
FixStatus = tuple[FixState, str]


@dataclass(frozen=True)
class SeriesView:
    """What the fork and the forge show for one series."""

    series: str
    prs: Sequence[PullRequest]  # stablectl's backport PRs of this series, any state
    branches: Mapping[str, str]  # stablectl's branches of this series on the fork -> head
    fixes: Mapping[str, FixStatus]  # fix key -> its status in the plan
    skipping: frozenset[int] = frozenset()  # PRs a `/stablectl skip` of this run closes
    skips: frozenset[int] = frozenset()  # closed PRs the controller closed as skipped
    skip_label: str = "skipped"
    own_labels: frozenset[str] = frozenset()  # the labels sync decides


@dataclass
class Reconciled:
    actions: list[Action] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    routine: list[str] = field(default_factory=list)  # of `notices`: nothing to look at


def skipped_fixes(
    prs: Iterable[PullRequest],
    skip_label: str,
    skipping: Collection[int] = frozenset(),
    skips: Collection[int] = frozenset(),
) -> set[str]:
    """The fixes a maintainer skipped, as the 12-hex prefixes of their keys: their PR was
    closed with the skip label by the controller (`skips`: its closing comment records it),
    or a `/stablectl skip` of this run closes it (`skipping`). Which fix a PR is comes from
    its head branch, `stablectl/<series>/<key[:12]>`, which nobody can change once the PR
    exists, never from its body (anyone with write access can edit a closed PR's body)."""
    return {
        key
        for p in prs
        if (key := branch_key(p.head))
        and (
            p.number in skipping
            or (p.state == "closed" and skip_label in p.labels and p.number in skips)
        )
    }


def reconcile(wanted: Sequence[Wanted], view: SeriesView) -> Reconciled:
    out = Reconciled()
    open_by_key = _open_prs(view, out)
    skipped = skipped_fixes(view.prs, view.skip_label, view.skipping, view.skips)
    for p in view.prs:
        if p.state == "closed" and view.skip_label in p.labels and p.number not in view.skips:
            out.notices.append(
                f"{view.series}: #{p.number} carries the {view.skip_label!r} label but no "
                "maintainer skipped it through stablectl: the fix stays wanted"
            )
    for w in wanted:
        pr = open_by_key.get(w.key)
        if pr is None and w.key[:12] in skipped and not w.requested_by:
            note = f"{view.series}: {w.key[:10]} skipped by a maintainer"
            out.notices.append(note)
            out.routine.append(note)
            continue
        _reconcile_one(w, pr, view, out)
    _close_unwanted(wanted, open_by_key, view, out)
    _delete_unused_branches(wanted, view, out)
    return out


def _open_prs(view: SeriesView, out: Reconciled) -> dict[str, PullRequest]:
    open_by_key: dict[str, PullRequest] = {}
    for p in view.prs:
        if p.state != "open" or p.number in view.skipping or p.marker is None:
            continue
        if p.marker.original in open_by_key:  # a duplicate from an old race: keep one
            first = open_by_key[p.marker.original]
            out.notices.append(f"{view.series}: PR #{p.number} duplicates #{first.number}")
            continue
        open_by_key[p.marker.original] = p
    return open_by_key


def _by_hand(pr: PullRequest) -> bool:
    """A maintainer pushed to the PR (its head is not what stablectl pushed) or took it over."""
    m = pr.marker
    return m is not None and (m.extra.get("pushed") != pr.head_sha or m.extra.get("manual") == "1")


def _reconcile_one(w: Wanted, pr: PullRequest | None, view: SeriesView, out: Reconciled) -> None:
    s = view.series
    current = view.branches.get(w.branch)
    if pr is not None and _by_hand(pr):
        out.notices.append(
            f"{s}: PR #{pr.number} has a maintainer's commits; stablectl leaves its branch alone"
        )
        return
    if pr is not None and pr.draft and w.status == "clean":
        # GitHub's REST API cannot mark a draft ready: supersede it with a new PR.
        out.actions += [
            Action(s, w.branch, f"{w.head[:10]} (now clean)", Push(w.branch, w.head, current)),
            Action(
                s,
                f"#{pr.number}",
                "superseded: now clean",
                ClosePR(pr.number, "superseded", "the new PR below", None),
            ),
            open_action(w),
        ]
        return
    if current != w.head:
        out.actions.append(
            Action(s, w.branch, f"{w.head[:10]} ({w.status})", Push(w.branch, w.head, current))
        )
    if pr is None:
        out.actions.append(open_action(w))
        return
    if pr.title != w.title or pr.body != w.body:
        test_sha = w.head if w.status == "clean" and current != w.head else None
        out.actions.append(
            Action(s, f"#{pr.number}", "title/body", UpdatePR(pr.number, w.title, w.body, test_sha))
        )
    if tuple(sorted(lb for lb in pr.labels if lb in view.own_labels)) != w.labels:
        out.actions.append(
            Action(s, f"#{pr.number}", ", ".join(w.labels), SetLabels(pr.number, w.labels))
        )


def open_action(w: Wanted) -> Action:
    return Action(
        w.series.name,
        w.branch,
        w.title,
        OpenPR(
            head=w.branch,
            base=w.series.stable_branch,
            title=w.title,
            body=w.body,
            draft=w.status == "conflict",
            labels=w.labels,
            test_sha=w.head if w.status == "clean" else None,
        ),
    )


def _close_unwanted(
    wanted: Sequence[Wanted],
    open_by_key: Mapping[str, PullRequest],
    view: SeriesView,
    out: Reconciled,
) -> None:
    """Open PRs nobody wants any more: closed, saying why, and their branches deleted."""
    wanted_keys = {w.key for w in wanted}
    for key, pr in open_by_key.items():
        if key in wanted_keys:
            continue
        state = view.fixes.get(key)
        if state is None:
            kind, detail = "closed-unselected", "no flag rule matches it now"
        elif state[0].done:
            kind, detail = "closed-applied", state[1] or state[0]
        elif state[0] in (FixState.REVERTED, FixState.EXCLUDED, FixState.NOT_APPLICABLE):
            kind, detail = f"closed-{state[0]}", state[1]
        else:
            continue  # pending but not wanted (an error): left open, the problem is reported
        out.actions.append(
            Action(view.series, f"#{pr.number}", kind, ClosePR(pr.number, kind, detail, pr.head))
        )


def _delete_unused_branches(wanted: Sequence[Wanted], view: SeriesView, out: Reconciled) -> None:
    """stablectl's own branches with no open PR and no wanted fix."""
    keep = {branch_name(view.series, w.key) for w in wanted}
    keep |= {p.head for p in view.prs if p.state == "open"}
    closing = {
        a.payload.branch for a in out.actions if isinstance(a.payload, ClosePR) and a.payload.branch
    }
    for b, sha in sorted(view.branches.items()):
        if b not in keep and b not in closing:
            out.actions.append(Action(view.series, b, "no open PR", DeleteBranch(b, sha)))
