"""Picks computed ahead in threads (controller/pick_ahead.py) give the plan computed in order:
the same verdicts, picks, commits and prerequisites; only the time differs."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pygit2
import pytest

import stablectl.controller.pick_ahead as pick_ahead
import stablectl.controller.planner as planner
import stablectl.controller.prerequisites as prerequisites
import stablectl.controller.selection.summaries as summaries
import stablectl.gitops.scan as scan
from stablectl.controller.choice import pick_best
from stablectl.controller.demo import Example
from stablectl.controller.pick_ahead import PickAhead
from stablectl.controller.plan import Plan
from stablectl.controller.selection import Source
from stablectl.controller.workspace import Workspace
from stablectl.gitops.history import History
from stablectl.gitops.pick import Committer, Picker
from stablectl.policy import load_policy_text
from tests.controller.test_prerequisites import build
from tests.helpers import plan_line


def comparable(plan: Plan) -> dict[str, Any]:
    """A plan's JSON without its times (a pick's ms, the stats' seconds, when it was made)
    and the counts of where its work was done (threads, worker processes, sqlite)."""
    doc = plan.to_json()
    doc.pop("created", None)
    for s in doc["series"]:
        for f in s["fixes"]:
            for a in f["attempts"]:
                a.pop("ms")
    where = ("seconds_", "ahead_", "facts_", "paths_in_bulk")
    doc["stats"] = {k: v for k, v in doc["stats"].items() if not k.startswith(where)}
    return doc


def with_jobs(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    monkeypatch.setattr(planner, "default_jobs", lambda: jobs)


def test_the_example_plans_the_same_with_picks_ahead(
    example_template: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clean picks move the tip (what threads picked onto the old one is dropped), a first
    source conflicts and a sibling's backport applies, a fix conflicts everywhere. In order,
    in threads, and in worker processes (gitops/workers.py: what a far line's plan uses),
    where the last plan also folds every range and computes every patch-id in workers."""
    plans = []
    cached = []
    for jobs, processes in ((1, False), (4, False), (2, True)):
        if processes:
            monkeypatch.setattr(summaries, "FOLD_IN_WORKERS", 1)
            monkeypatch.setattr(scan, "_PATCH_IDS_IN_WORKERS", 1)
        ws = Workspace(
            load_policy_text(example_template.policy_yaml()),
            tmp_path / f"state-{jobs}-{processes}",
            committer_time=1,
        )
        ws.fetch()
        plan = planner.Planner(ws, jobs=jobs, processes=processes).plan()
        assert bool(plan.stats.get("ahead_in_processes")) == processes
        plans.append(comparable(plan))
        cached.append(plan.stats["facts_cached"])
        ws.close()
    assert plans[0] == plans[1] == plans[2]
    assert cached[0] == cached[1] == 0 < cached[2]  # what the workers read, kept in sqlite


def test_prerequisites_are_found_the_same_with_picks_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = build(tmp_path)
    plans = []
    for jobs in (1, 3):
        with_jobs(monkeypatch, jobs)
        plans.append(comparable(plan_line(tmp_path / f"j{jobs}", h, "3.10.2", "3.10")))
    assert plans[0] == plans[1]
    fixes = {f["subject"].split(":")[0]: f for f in plans[1]["series"][0]["fixes"]}
    assert len(fixes["gh-90"]["prerequisites"]) == 2


def test_blames_made_ahead_serve_the_prerequisite_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F, G and H conflict; while the planner searches F's prerequisites, threads pick G and
    H and blame them: the search takes those blames, and finds what it finds in order."""
    h, _ = build(tmp_path)
    made: list[str] = []
    blame = prerequisites.blame_commit

    def counted(*args: Any) -> list[list[object]]:
        made.append(threading.current_thread().name)
        return blame(*args)

    monkeypatch.setattr(prerequisites, "blame_commit", counted)
    plans = []
    for jobs in (1, 3):
        with_jobs(monkeypatch, jobs)
        made.clear()
        plans.append(comparable(plan_line(tmp_path / f"j{jobs}", h, "3.10.2", "3.10")))
        threads = [n for n in made if n == "pick-ahead"]
        assert not threads if jobs == 1 else threads
    assert plans[0] == plans[1]


def test_threads_follow_the_tip_the_chain_moves_to(tmp_path: Path) -> None:
    """Threads pick each fix onto the tip the fixes before it leave; the planner's picker
    takes a pick for the tip it asks about, and it is what the picker would compute."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"a.txt": "1\n2\n3\n", "b.txt": "x\n"})
    fix_a = h.commit("main", "fix a", {"a.txt": "1\n2 fixed\n3\n"})
    fix_b = h.commit("main", "fix b", {"b.txt": "y\n"})
    repo = pygit2.Repository(str(h.path))
    committer = Committer("t", "t@localhost", 1)

    def choose(p: Picker, sources: list[Source], onto: str, facts: Any) -> str | None:
        _attempts, chosen, _note = pick_best(p, sources, onto, facts)
        return chosen.result.commit if chosen is not None else None

    class NoFacts:
        def facts(self, sha: str) -> None:
            return None

    alone = Picker(repo, committer)
    picker = Picker(repo, committer)
    with PickAhead(picker, choose, NoFacts(), jobs=2) as ahead:
        ahead.follow([_candidate(fix_a), _candidate(fix_b)], root)
        first = picker.pick(fix_a, root)  # the first miss: the planner's, threads start
        assert first.commit is not None
        ahead.follow([_candidate(fix_b)], first.commit)
        _picked_by_a_thread(ahead, first.commit)
        got = picker.pick(fix_b, first.commit)
    expected = alone.pick(fix_b, first.commit)
    assert ahead.stats["used"] >= 1  # fix_b (and fix_a, when a thread started it first)
    assert (got.outcome, got.tree, got.commit) == ("clean", expected.tree, expected.commit)
    assert first.commit == alone.pick(fix_a, root).commit


def _picked_by_a_thread(ahead: PickAhead, tip: str) -> None:
    """Wait until a thread has picked the first queued fix onto `tip` (else the planner
    would pick it itself, as it does when it is quicker than the threads)."""
    with ahead._cond:
        assert ahead._cond.wait_for(lambda: tip in ahead._queue[0].picks, timeout=60)


def _candidate(sha: str) -> Any:
    """The two fields PickAhead reads of a candidate."""
    return SimpleNamespace(fix=SimpleNamespace(key=sha), sources=[Source(sha, "original", "main")])


def test_one_job_picks_in_order_in_the_planner_thread(tmp_path: Path) -> None:
    h = History(tmp_path / "up.git")
    root = h.commit("main", "base", {"a.txt": "1\n"})
    fix = h.commit("main", "fix", {"a.txt": "2\n"})
    picker = Picker(pygit2.Repository(str(h.path)), Committer("t", "t@localhost", 1))
    with PickAhead(picker, lambda *a: None, picker.repo, jobs=1) as ahead:  # type: ignore[arg-type]
        ahead.follow([_candidate(fix)], root)
        assert picker.pick(fix, root).outcome == "clean"
    assert ahead.stats == {"started": 0, "used": 0, "repicked": 0, "in_processes": 0}
    assert pick_ahead.default_jobs() >= 1
