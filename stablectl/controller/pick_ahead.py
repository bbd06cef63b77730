"""Picks computed ahead. A series' fixes are chained one at a time (a clean pick is the tip of
the next), and a pick is mostly git's merge in a process of its own. So while the planner
works on one fix (its verdict, its prerequisite search), threads pick the fixes after it, in
order, each onto the tip the fixes before it leave as far as the threads know: a fix whose
pick is clean moves the tip for the next, one that conflicts leaves it (a fix still being
picked is taken to conflict, as most of a far line's do; when it does not, what was picked
after it onto the old tip is picked again). Each thread runs a fix's whole choice of sources
(`choice.pick_best`) with a twin of the picker (its own repository handle, no memo) and
records every pick it makes under the memo's key. The planner's picker takes a recorded pick
for the tip it asks about instead of computing it (`Picker.ahead`); a pick onto another tip
is never used. Picks are pure functions of their inputs, so the plan is the one computed in
order; only the time changes.

With `processes`, a thread hands its fix to a worker process (gitops/workers.py) and waits
for the answer: the same choice (`Chooser`, plain data), the same twin picker (made in the
worker from `Picker.spec`, kept there for the next fix), the same recorded picks. Threads
alone share one core (most of a pick holds Python's lock), so a far line, whose hundreds of
picks are most of its plan, is picked in worker processes; a short plan stays in threads,
where starting a worker would cost more than it saves."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pygit2

from stablectl.controller.selection import Candidate, Source
from stablectl.gitops import workers
from stablectl.gitops.pick import Picker, PickerSpec
from stablectl.gitops.scan import CommitFacts


class FactsOf(Protocol):
    """Where a pick's source paths come from (a CommitIndex, or the facts a thread was given)."""

    def facts(self, sha: str) -> CommitFacts | None: ...


# What a thread runs: a fix's choice of sources onto a tip, with the picker and facts given;
# it answers the tip after the fix (its clean pick's commit), or None (the tip stays).
Choose = Callable[[Picker, list[Source], str, FactsOf], str | None]
Picks = dict[str, Any]  # memo key -> a pick as the memo holds it


def default_jobs() -> int:
    """Threads computing picks ahead: one per core."""
    return os.cpu_count() or 1


# Coming fixes from which a plan picks ahead in worker processes rather than threads.
PROCESSES_FROM = 24


class _Recorder:
    """A twin's memo: it knows nothing, and records the picks (and blames) made."""

    def __init__(self) -> None:
        self.picks: Picks = {}
        self.blames: Picks = {}

    def memo_get(self, table: str, key: str) -> Any:
        return None

    def memo_put(self, table: str, key: str, data: Any) -> None:
        if table == "picks":
            self.picks[key] = data
        elif table == "blame":
            self.blames[key] = data


class _Given:
    """The facts of a fix's sources, read by the planner's thread (the index's sqlite stays
    in the thread that opened it)."""

    def __init__(self, facts: Mapping[str, CommitFacts | None]) -> None:
        self._facts = dict(facts)

    def facts(self, sha: str) -> CommitFacts | None:
        return self._facts.get(sha)


@dataclass
class _Fix:
    """One coming fix in the threads' queue."""

    key: str
    sources: list[Source]
    given: _Given
    shas: frozenset[str]
    state: str = "todo"  # "running", "done"
    onto: str = ""  # the tip it is (or was last) picked onto
    stale: bool = False  # running onto a tip that is no longer the one before it
    picks: dict[str, Picks] = field(default_factory=dict)  # by tip: what its run recorded
    after: dict[str, str | None] = field(default_factory=dict)  # by tip: the tip it leaves


class PickAhead:
    """Picks of a series' coming fixes, computed in order by up to `jobs` threads.

    `follow(candidates, tip, picked)` before each fix is planned: the candidates (in plan
    order) still to come, the fix being planned first, and the tip it goes onto. `take` is
    installed as the picker's `ahead`: a pick a thread made (or is making) onto the tip asked
    about; a fix no thread has started is left to the planner."""

    def __init__(
        self,
        picker: Picker,
        choose: Choose,
        facts: FactsOf,
        *,
        jobs: int | None = None,
        processes: bool = False,
    ) -> None:
        self.picker = picker
        self.processes = processes
        self.choose = choose
        self.facts = facts
        self.jobs = max(1, jobs if jobs is not None else default_jobs())
        self.depth = 2 * self.jobs
        self._cond = threading.Condition()
        self._queue: list[_Fix] = []  # in plan order
        self._tip = ""  # the planner's tip, onto which the first of the queue goes
        self._skipped: set[str] = set()  # fixes the planner will not pick
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._missed = False  # the memo missed a pick: a cold plan, threads at work
        self._local = threading.local()
        self._blames: Picks = {}  # blame memo key -> a blame a thread made (tips do not matter)
        self.stats = {"started": 0, "used": 0, "repicked": 0, "in_processes": 0}

    def __enter__(self) -> PickAhead:
        self.picker.ahead = self.take
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.picker.ahead == self.take:
            self.picker.ahead = None
        with self._cond:
            self._closed = True
            self._queue = []
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []

    def follow(
        self,
        candidates: Sequence[Candidate],
        tip: str,
        picked: Callable[[Candidate], bool | None] = lambda c: True,
    ) -> None:
        """The fixes still to come (in plan order) and the planner's tip. Of those not queued
        yet, those the planner will pick (`picked`; None: not known yet, asked again next
        time) join the queue at their place; queued picks onto a tip that is no longer the one
        before them are redone."""
        if self.jobs < 2:
            return  # in order, in the planner's thread: nothing to gain
        place = {c.fix.key: i for i, c in enumerate(candidates)}
        with self._cond:
            known = {f.key for f in self._queue}
            self._queue = [f for f in self._queue if f.key in place]
            self._tip = tip
            for cand in candidates:
                key = cand.fix.key
                if key in known or key in self._skipped or not cand.sources:
                    continue
                will = picked(cand)
                if will is None:
                    continue
                if not will:
                    self._skipped.add(key)
                    continue
                given = _Given({s.sha: self.facts.facts(s.sha) for s in cand.sources})
                shas = frozenset(s.sha for s in cand.sources)
                self._queue.append(_Fix(key, list(cand.sources), given, shas))
            self._queue.sort(key=lambda f: place[f.key])
            self._revalidate()
            self._cond.notify_all()
        if self._missed:
            self._start()

    def take(self, source: str, onto: str, key: str) -> Any:
        """The pick of `source` onto `onto` a thread made under `key`, as the memo holds it;
        None when no thread makes it (the planner then computes it). Called only when the
        memo misses: the first call starts the threads (a warm plan starts none)."""
        if not self._missed:
            self._missed = True
            self._start()
        with self._cond:
            while True:
                fix = next((f for f in self._queue if source in f.shas), None)
                if fix is None:
                    return None
                if onto in fix.picks:
                    found = fix.picks[onto].get(key)
                    if found is not None:
                        self.stats["used"] += 1
                    return found
                if fix.state == "running" and fix.onto == onto:
                    self._cond.wait()
                    continue
                # Not started onto this tip: the planner picks it, no thread does again.
                self._queue.remove(fix)
                self._skipped.add(fix.key)
                return None

    def blame(self, key: str) -> Any:
        """A blame a thread made under the blame memo's `key` (the prerequisite search of a
        fix whose pick conflicted there), or None. Installed as the finder's `ahead`."""
        with self._cond:
            return self._blames.get(key)

    # ------------------------------------------------------------------ the threads

    def _tips(self) -> list[str]:
        """Where each queued fix goes, as far as the threads know (under the lock)."""
        tip = self._tip
        out = []
        for f in self._queue:
            out.append(tip)
            if f.state == "done" and tip in f.after:
                tip = f.after[tip] or tip
        return out

    def _revalidate(self) -> None:
        for f, tip in zip(self._queue, self._tips(), strict=True):
            if f.state == "running" and f.onto != tip:
                f.stale = True
            elif f.state == "done" and tip not in f.picks:
                f.state = "todo"
                self.stats["repicked"] += 1

    def _next(self) -> tuple[_Fix, str] | None:
        with self._cond:
            while not self._closed:
                # No farther than `depth` fixes past the planner's: a tip the threads did not
                # foresee (a fix clean only on prerequisites) costs what they picked past it.
                near = self._queue[: 1 + self.depth]
                for f, tip in zip(near, self._tips()[: len(near)], strict=True):
                    if f.state == "todo":
                        f.state, f.onto, f.stale = "running", tip, False
                        self.stats["started"] += 1
                        return f, tip
                self._cond.wait()
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            fix, tip = job
            picks: Picks = {}
            blames: Picks = {}
            after: str | None = None
            try:
                after, picks, blames = self._run(fix, tip)
            except Exception:  # the planner's own pick meets it again
                picks, blames = {}, {}
            with self._cond:
                self._blames.update(blames)
                fix.picks[tip] = picks
                fix.after[tip] = after
                fix.state = "todo" if fix.stale else "done"
                fix.stale = False
                self._revalidate()
                self._cond.notify_all()

    def _start(self) -> None:
        if self.jobs < 2 or self._closed:
            return
        while len(self._threads) < self.jobs:
            t = threading.Thread(target=self._work, name="pick-ahead", daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, fix: _Fix, tip: str) -> tuple[str | None, Picks, Picks]:
        if self.processes:
            spec = self.picker.spec()
            job = workers.submit(_in_worker, spec, self.choose, fix.sources, tip, fix.given)
            done = workers.result(job) if job is not None else None
            if done is not None:
                with self._cond:
                    self.stats["in_processes"] += 1
                return done
            self.processes = False  # no worker can: this thread picks, as without them
        twin: Picker | None = getattr(self._local, "twin", None)
        if twin is None:
            twin = self.picker.twin(pygit2.Repository(self.picker.repo.path))
            self._local.twin = twin
        return _choose(twin, self.choose, fix.sources, tip, fix.given)


def _choose(
    twin: Picker, choose: Choose, sources: list[Source], tip: str, given: FactsOf
) -> tuple[str | None, Picks, Picks]:
    """A fix's choice with a twin whose memo records what it makes: (the tip after the fix,
    the picks, the blames)."""
    recorder = _Recorder()
    twin.memo = recorder
    after = choose(twin, sources, tip, given)
    return after, recorder.picks, recorder.blames


_TWINS: dict[PickerSpec, Picker] = {}  # a worker process's pickers, one per spec


def _in_worker(
    spec: PickerSpec, choose: Choose, sources: list[Source], tip: str, given: _Given
) -> tuple[str | None, Picks, Picks]:
    """`_choose` in a worker process, with the twin it keeps for `spec`."""
    twin = _TWINS.get(spec)
    if twin is None:
        if len(_TWINS) >= 4:
            _TWINS.clear()
        twin = _TWINS[spec] = spec.open()
    return _choose(twin, choose, sources, tip, given)
