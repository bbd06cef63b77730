"""reconcile() on plain values: no git, no forge. What the desired PRs and the forge's view of
one series turn into."""

from __future__ import annotations

from stablectl.controller.selection import FixState
from stablectl.controller.sync.actions import (
    ClosePR,
    DeleteBranch,
    OpenPR,
    Push,
    SetLabels,
    UpdatePR,
)
from stablectl.controller.sync.desired import Wanted
from stablectl.controller.sync.presentation import branch_name
from stablectl.controller.sync.reconcile import SeriesView, reconcile
from stablectl.forge.base import Marker, PullRequest
from stablectl.policy import Series

SERIES = Series(name="3.11.2", base="v3.11.2", sources=["3.11", "main"])
KEY_A, KEY_B = "a" * 40, "b" * 40
HEAD_A, HEAD_A2 = "1" * 40, "2" * 40
OWN = frozenset({"backport", "security", "conflicts", "skipped"})


def wanted(key: str = KEY_A, head: str = HEAD_A, **kw: object) -> Wanted:
    status = str(kw.get("status", "clean"))
    marker = Marker(
        "backport", SERIES.name, original=key, source=key, extra={"pushed": head, "status": status}
    )
    return Wanted(
        series=SERIES,
        key=key,
        branch=branch_name(SERIES.name, key),
        head=head,
        status="conflict" if status == "conflict" else "clean",
        title=str(kw.get("title", f"[3.11.2-stable] fix {key[:4]}")),
        body=f"body\n{marker.render()}",
        labels=("backport",),
        marker=marker,
        requested_by=None,
    )


def pr_for(w: Wanted, number: int = 7, **kw: object) -> PullRequest:
    extra = dict(w.marker.extra)
    if "pushed" in kw:
        extra["pushed"] = str(kw["pushed"])
    marker = Marker("backport", SERIES.name, original=w.key, source=w.key, extra=extra)
    return PullRequest(
        number=number,
        title=w.title,
        body=str(kw.get("body", f"body\n{marker.render()}")),
        head=w.branch,
        base=SERIES.stable_branch,
        head_sha=str(kw.get("head_sha", w.head)),
        state=kw.get("state", "open"),  # type: ignore[arg-type]
        draft=bool(kw.get("draft", False)),
        labels=tuple(kw.get("labels", ("backport",))),  # type: ignore[call-overload]
        author="stablectl-bot",
        url=f"local://x/pull/{number}",
    )


def view(prs: list[PullRequest], branches: dict[str, str], **kw: object) -> SeriesView:
    return SeriesView(
        series=SERIES.name,
        prs=prs,
        branches=branches,
        fixes=kw.get("fixes", {}),  # type: ignore[arg-type]
        skipping=frozenset(kw.get("skipping", ())),  # type: ignore[arg-type]
        skips=frozenset(kw.get("skips", ())),  # type: ignore[arg-type]
        skip_label="skipped",
        own_labels=OWN,
    )


def kinds(actions: list[object]) -> list[str]:
    return [a.kind for a in actions]  # type: ignore[attr-defined]


def test_a_new_fix_is_pushed_then_opened_and_its_head_tested() -> None:
    w = wanted()
    out = reconcile([w], view([], {}))
    assert kinds(out.actions) == ["push", "open"]
    push, open_ = (a.payload for a in out.actions)
    assert push == Push(w.branch, HEAD_A, None)
    assert isinstance(open_, OpenPR) and open_.test_sha == HEAD_A and not open_.draft
    assert open_.base == "3.11.2-stable" and open_.labels == ("backport",)


def test_a_conflict_opens_a_draft_without_a_test_run() -> None:
    w = wanted(status="conflict")
    open_ = reconcile([w], view([], {})).actions[-1].payload
    assert isinstance(open_, OpenPR) and open_.draft and open_.test_sha is None


def test_a_pr_that_matches_needs_nothing() -> None:
    w = wanted()
    assert reconcile([w], view([pr_for(w)], {w.branch: HEAD_A})).actions == []


def test_a_moved_head_is_pushed_and_the_pr_retitled_and_tested() -> None:
    old = wanted(head=HEAD_A)
    new = wanted(head=HEAD_A2, title="[3.11.2-stable] fix aaaa, again")
    pr = pr_for(old)
    out = reconcile([new], view([pr], {new.branch: HEAD_A}))
    assert kinds(out.actions) == ["push", "update"]
    assert out.actions[0].payload == Push(new.branch, HEAD_A2, HEAD_A)
    update = out.actions[1].payload
    assert isinstance(update, UpdatePR) and update.test_sha == HEAD_A2


def test_labels_sync_decides_are_set_others_ignored() -> None:
    w = wanted()
    pr = pr_for(w, labels=("backport", "security", "tests-failed", "needs-thought"))
    out = reconcile([w], view([pr], {w.branch: HEAD_A}))
    assert [a.payload for a in out.actions] == [SetLabels(pr.number, ("backport",))]


def test_a_maintainers_push_is_left_alone() -> None:
    w = wanted(head=HEAD_A2)
    pr = pr_for(wanted(), head_sha="9" * 40)  # pushed by a person: not what stablectl pushed
    out = reconcile([w], view([pr], {w.branch: "9" * 40}))
    assert out.actions == []
    assert out.notices == [
        "3.11.2: PR #7 has a maintainer's commits; stablectl leaves its branch alone"
    ]


def test_a_draft_that_became_clean_is_superseded_by_a_new_pr() -> None:
    old = wanted(status="conflict")
    pr = pr_for(old, draft=True)
    new = wanted(head=HEAD_A2)
    out = reconcile([new], view([pr], {old.branch: HEAD_A}))
    assert kinds(out.actions) == ["push", "close", "open"]
    close = out.actions[1].payload
    assert close == ClosePR(pr.number, "superseded", "the new PR below", None)


def test_a_pr_whose_fix_arrived_is_closed_with_its_branch_once() -> None:
    w = wanted()
    pr = pr_for(w)
    fixes = {KEY_A: (FixState.APPLIED, "trailer names aaaaaaaaaa")}
    out = reconcile([], view([pr], {w.branch: HEAD_A}, fixes=fixes))
    assert [a.payload for a in out.actions] == [
        ClosePR(pr.number, "closed-applied", "trailer names aaaaaaaaaa", w.branch)
    ]


def test_closing_reasons_follow_the_fix_state() -> None:
    w = wanted()
    pr = pr_for(w)
    for state, kind in [
        (None, "closed-unselected"),
        ((FixState.REVERTED, "reverted upstream"), "closed-reverted"),
        ((FixState.EXCLUDED, "not for us"), "closed-excluded"),
        ((FixState.IN_BASE, "in v3.11.2"), "closed-applied"),
        (
            (FixState.NOT_APPLICABLE, "changes Lib/x.py, which it does not have"),
            "closed-not-applicable",
        ),
    ]:
        fixes = {} if state is None else {KEY_A: state}
        out = reconcile([], view([pr], {}, fixes=fixes))
        assert [a.detail for a in out.actions] == [kind]
    # Pending but not wanted (its pick errored): left open, the error is reported elsewhere.
    assert reconcile([], view([pr], {}, fixes={KEY_A: (FixState.NEW_ERROR, "")})).actions == []


def test_a_stray_branch_is_deleted() -> None:
    stray = branch_name(SERIES.name, KEY_B)
    out = reconcile([], view([], {stray: HEAD_A}))
    assert [a.payload for a in out.actions] == [DeleteBranch(stray, HEAD_A)]


def test_a_skipped_fix_gets_no_new_pr() -> None:
    w = wanted()
    closed = pr_for(w, state="closed", labels=("backport", "skipped"))
    out = reconcile([w], view([closed], {}, skips={closed.number}))
    assert out.actions == [] and out.notices == [f"3.11.2: {KEY_A[:10]} skipped by a maintainer"]
    # The label and the closed state alone (anyone with write access sets them) skip nothing.
    out = reconcile([w], view([closed], {}))
    assert out.actions and any("no maintainer skipped it" in n for n in out.notices)
    # A skip in this very run counts too.
    open_pr = pr_for(w)
    out = reconcile([w], view([open_pr], {w.branch: HEAD_A}, skipping={open_pr.number}))
    assert out.actions == []


def test_a_duplicate_pr_from_an_old_race_is_reported_not_touched() -> None:
    w = wanted()
    first, second = pr_for(w, number=3), pr_for(w, number=4)
    out = reconcile([w], view([first, second], {w.branch: HEAD_A}))
    assert out.actions == [] and out.notices == ["3.11.2: PR #4 duplicates #3"]
