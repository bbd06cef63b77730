"""Worker processes (gitops/workers.py): a job runs in another process; a pool that broke
answers None and is not asked again, so the caller does the work itself."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stablectl.gitops import workers


def _pid_and_double(n: int) -> tuple[int, int]:
    return os.getpid(), 2 * n


def _die() -> None:
    os._exit(3)


def _fail() -> None:
    raise ValueError("the job's own error")


@pytest.fixture
def fresh_pool() -> Iterator[None]:
    workers.shutdown()
    yield None
    workers.shutdown()


def test_a_job_runs_in_a_worker_process(fresh_pool: object) -> None:
    job = workers.submit(_pid_and_double, 21, workers=1)
    assert job is not None
    pid, doubled = workers.result(job) or (0, 0)
    assert doubled == 42 and pid not in (0, os.getpid())
    failing = workers.submit(_fail, workers=1)
    assert failing is not None
    with pytest.raises(ValueError, match="the job's own error"):
        workers.result(failing)  # a job's own error is the caller's; the pool goes on
    again = workers.submit(_pid_and_double, 1, workers=1)
    assert again is not None and workers.result(again) == (pid, 2)  # the same worker, kept


def test_a_broken_pool_is_not_asked_again(fresh_pool: object) -> None:
    job = workers.submit(_die, workers=1)
    assert job is not None
    assert workers.result(job) is None
    assert workers.submit(_pid_and_double, 1, workers=1) is None
