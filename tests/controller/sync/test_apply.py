"""The apply step against a forge that records its calls (as miss-islington's tests do): which
calls each action makes, in which order, and what a failure does to the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stablectl.controller.sync.actions import (
    Action,
    ClosePR,
    Findings,
    MergePR,
    OpenPR,
    PostComment,
    Retest,
    SetLabels,
    SkipPR,
    UpdatePR,
)
from stablectl.controller.sync.apply import Applier, WritePoints
from stablectl.forge.base import CIRequest, ConflictError, ForgeError, ForgeStats, PullRequest
from stablectl.policy import Policy
from tests.helpers import minimal_policy


class RecordingForge:
    """Records every call; answers with plain values. `fail` maps a method to the error it
    raises."""

    kind = "recording"

    def __init__(self, labels: Sequence[str] = (), fail: Mapping[str, Exception] = {}) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.labels = tuple(labels)
        self.fail = dict(fail)
        self.stats = ForgeStats()

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    def _pr(self, number: int) -> PullRequest:
        return PullRequest(
            number, "t", "b", "h", "3.11.2-stable", "1" * 40, "open", False, self.labels, "bot", ""
        )

    def open_pr(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        *,
        draft: bool = False,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        self._call("open_pr", head, base, title, draft, tuple(labels))
        return self._pr(5)

    def update_pr(self, number: int, *, title: str | None = None, body: str | None = None) -> None:
        self._call("update_pr", number, title)

    def get_pr(self, number: int) -> PullRequest:
        return self._pr(number)

    def set_labels(self, number: int, labels: Sequence[str]) -> None:
        self._call("set_labels", number, tuple(labels))

    def comment(self, number: int, body: str) -> None:
        self._call("comment", number, body)

    def close_pr(self, number: int, comment: str | None = None) -> None:
        self._call("close_pr", number, comment is not None and "stablectl:marker" in comment)

    def request_tests(self, number: int, sha: str, how: CIRequest, *, again: bool) -> None:
        self._call("request_tests", number, sha, how.trigger, again)

    def merge(self, number: int, expected_head: str, method: str) -> str:
        self._call("merge", number, expected_head, method)
        return "2" * 40


def applier(tmp_path: Path, forge: RecordingForge) -> tuple[Applier, Findings]:
    policy: Policy = minimal_policy(series="3.11.2", sources='["3.11", main]')
    cache = SimpleNamespace(
        fork_branch=lambda name: None, fetch_fork=lambda url: None, set_fork_branch=None
    )
    findings = Findings()
    applier = Applier(
        policy,
        cache,  # type: ignore[arg-type]
        forge,  # type: ignore[arg-type]
        state_dir=tmp_path,
        pusher=None,  # type: ignore[arg-type]
        findings=findings,
        writes=WritePoints(),
    )
    return applier, findings


def act(payload: Any, series: str = "3.11.2") -> Action:
    return Action(series, "t", "d", payload)


def test_open_then_ask_for_tests(tmp_path: Path) -> None:
    forge = RecordingForge()
    a, _ = applier(tmp_path, forge)
    op = OpenPR("stablectl/3.11.2/aaa", "3.11.2-stable", "T", "B", False, ("backport",), "1" * 40)
    done = a.apply([act(op)])
    assert len(done) == 1
    assert forge.calls == [
        ("open_pr", ("stablectl/3.11.2/aaa", "3.11.2-stable", "T", False, ("backport",))),
        ("request_tests", (5, "1" * 40, "dispatch", False)),
    ]


def test_an_update_without_a_new_head_asks_for_no_tests(tmp_path: Path) -> None:
    forge = RecordingForge()
    a, _ = applier(tmp_path, forge)
    a.apply([act(UpdatePR(3, "T", "B"))])
    assert forge.calls == [("update_pr", (3, "T"))]


def test_labels_keep_those_sync_does_not_decide(tmp_path: Path) -> None:
    forge = RecordingForge(labels=("conflicts", "tests-failed", "needs-thought"))
    a, _ = applier(tmp_path, forge)
    a.apply([act(SetLabels(3, ("backport", "security")))])
    assert forge.calls == [
        ("set_labels", (3, ("backport", "needs-thought", "security", "tests-failed")))
    ]


def test_retest_clears_the_failure_label_then_asks_again(tmp_path: Path) -> None:
    forge = RecordingForge(labels=("backport", "tests-failed"))
    a, _ = applier(tmp_path, forge)
    a.apply([act(Retest(3, "1" * 40))])
    assert forge.calls == [
        ("set_labels", (3, ("backport",))),
        ("request_tests", (3, "1" * 40, "dispatch", True)),
    ]


def test_skip_labels_then_closes_and_close_comments_with_a_marker(tmp_path: Path) -> None:
    forge = RecordingForge(labels=("backport",))
    a, _ = applier(tmp_path, forge)
    a.apply([act(SkipPR(3)), act(ClosePR(4, "closed-applied", "on the branch", None))])
    assert forge.calls == [
        ("set_labels", (3, ("backport", "skipped"))),
        ("close_pr", (3, True)),  # the controller's closing comment records the skip
        ("close_pr", (4, True)),
    ]


def test_a_test_request_that_fails_is_a_problem_not_an_abort(tmp_path: Path) -> None:
    forge = RecordingForge(fail={"request_tests": ForgeError("#5: run `stablectl init`")})
    a, findings = applier(tmp_path, forge)
    op = OpenPR("h", "3.11.2-stable", "T", "B", False, (), "1" * 40)
    done = a.apply([act(op), act(PostComment(5, "hi"))])
    assert len(done) == 2 and findings.problems == ["#5: run `stablectl init`"]
    assert [c[0] for c in forge.calls] == ["open_pr", "request_tests", "comment"]


def test_a_forge_failure_stops_the_run_and_is_reported(tmp_path: Path) -> None:
    forge = RecordingForge(fail={"comment": ForgeError("boom")})
    a, findings = applier(tmp_path, forge)
    with pytest.raises(ForgeError):
        a.apply([act(PostComment(5, "hi"), series=""), act(PostComment(6, "never"), series="")])
    assert findings.problems == ["comment t: boom"]
    assert [c[1][0] for c in forge.calls] == [5]


def test_a_merge_beaten_by_another_is_a_notice_and_the_rest_goes_on(tmp_path: Path) -> None:
    forge = RecordingForge(fail={"merge": ConflictError("head moved")})
    a, findings = applier(tmp_path, forge)
    done = a.apply([act(MergePR(3, "1" * 40, "b", "3.11.2-stable")), act(PostComment(5, "x"))])
    assert [d.kind for d in done] == ["comment"]
    assert findings.notices == ["t not merged: head moved"] and findings.problems == []


def test_write_points_tell_their_observers() -> None:
    seen: list[int] = []
    WritePoints.observers.append(seen.append)
    try:
        w = WritePoints()
        w.wrote()
        w.wrote()
    finally:
        WritePoints.observers.remove(seen.append)
    assert w.count == 2 and seen == [1, 2]
