"""The embedded forge: its SQLite file, concurrency, and the CLI verbs people use with it."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from stablectl.forge.base import ForgeError, Marker
from stablectl.forge.local import LocalForge
from stablectl.forge.local_db import MIGRATIONS, SCHEMA_VERSION
from tests.forges import BOT, SLUG, ForkRepo
from tests.helpers import run_cli

STABLE = "3.11.2-stable"
HEAD_A = "stablectl/3.11.2/aaa"
BODY = "x\n" + Marker("backport", "3.11.2", "a" * 40, "a" * 40).render()


@pytest.fixture
def fork(tmp_path: Path) -> ForkRepo:
    return ForkRepo.build(tmp_path / "repo")


def test_schema_is_versioned_and_wal(tmp_path: Path, fork: ForkRepo) -> None:
    db = tmp_path / "f.sqlite"
    LocalForge(db, fork.bare, slug=SLUG, actor=BOT).close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_old_schema_is_migrated_keeping_data(tmp_path: Path, fork: ForkRepo) -> None:
    db = tmp_path / "f.sqlite"
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    con.execute(
        "INSERT INTO prs(title, body, head, base, head_sha, state, draft, author, created_at,"
        " updated_at) VALUES ('t', ?, ?, ?, ?, 'open', 0, 'x', 'now', 'now')",
        (BODY, HEAD_A, STABLE, fork.shas["aaa"]),
    )
    con.commit()
    con.close()
    forge = LocalForge(db, fork.bare, slug=SLUG, actor=BOT)
    assert [p.number for p in forge.list_prs()] == [1]
    forge.upstream.record_pr(7, ["security"], [fork.shas["aaa"]])  # a table from version 2
    assert forge.upstream_pr_labels(fork.shas["aaa"]) == ["security"]


def test_newer_schema_is_refused(tmp_path: Path, fork: ForkRepo) -> None:
    db = tmp_path / "f.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(ForgeError, match="newer than this stablectl"):
        LocalForge(db, fork.bare, slug=SLUG, actor=BOT)


def test_missing_fork_repository(tmp_path: Path) -> None:
    with pytest.raises(ForgeError, match="does not exist"):
        LocalForge(tmp_path / "f.sqlite", tmp_path / "nope.git", slug=SLUG, actor=BOT)


def _open(args: tuple[str, str]) -> int:
    db, bare = args
    forge = LocalForge(Path(db), Path(bare), slug=SLUG, actor=BOT)
    try:
        return forge.open_pr(HEAD_A, STABLE, "t", BODY).number
    finally:
        forge.close()


def test_concurrent_opens_make_one_pr(tmp_path: Path, fork: ForkRepo) -> None:
    db = tmp_path / "f.sqlite"
    LocalForge(db, fork.bare, slug=SLUG, actor=BOT).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        numbers = pool.map(_open, [(str(db), str(fork.bare))] * 8)
    assert set(numbers) == {1}
    forge = LocalForge(db, fork.bare, slug=SLUG, actor=BOT)
    assert len(forge.list_prs("all")) == 1


# ---------------------------------------------------------------- CLI verbs


def write_policy(root: Path, fork: ForkRepo, command: str | None) -> Path:
    p = root / "policy.yaml"
    test = f"  test_command: {command!r}\n" if command else ""
    p.write_text(
        f"""\
project: demo
upstream: {{git: {fork.bare}, forge: python/cpython}}
fork: {{git: {fork.bare}, forge: {SLUG}}}
forge: {{kind: local}}
identity: {{name: {BOT}}}
series:
  - {{name: "3.11.2", base: v3.11.2, sources: ["3.11", main]}}
flags:
  - {{name: security-news, paths: ["Misc/NEWS.d/next/Security/*.rst"]}}
maintainers: [alice, bob]
approvals: {{required: 1}}
checks:
  required: [local-ci]
{test}"""
    )
    return p


@pytest.fixture
def cli_env(tmp_path: Path, fork: ForkRepo) -> tuple[Path, Path, LocalForge]:
    state = tmp_path / "state"
    policy = write_policy(tmp_path, fork, "grep -q 'x = 2' Lib/a.py && echo tests passed")
    forge = LocalForge(state / "forge" / "demo.sqlite", fork.bare, slug=SLUG, actor=BOT)
    forge.open_pr(HEAD_A, STABLE, "[3.11.2-stable] gh-1: fix aaa (GH-2)", BODY, labels=["backport"])
    return state, policy, forge


def test_prs_review_and_ci(
    capsys: pytest.CaptureFixture[str], cli_env: tuple[Path, Path, LocalForge], fork: ForkRepo
) -> None:
    state, policy, forge = cli_env
    base = ["--state-dir", str(state)]
    r = run_cli(capsys, *base, "prs", "--policy", str(policy), "--json")
    assert r.code == 0
    (pr,) = r.json()["prs"]
    assert pr["number"] == 1 and pr["ci"] == "none" and pr["approvals"] == "0/1"
    assert pr["marker"]["series"] == "3.11.2"

    r = run_cli(capsys, *base, "ci", "run", "--policy", str(policy))
    assert r.code == 0, r.err
    assert "success" in r.out
    (check,) = forge.checks(fork.shas["aaa"])
    assert (check.name, check.conclusion) == ("local-ci", "success")
    log = Path(check.url.removeprefix("file://"))
    assert "tests passed" in log.read_text()
    r = run_cli(capsys, *base, "ci", "run", "--policy", str(policy))
    assert r.code == 0 and "nothing to run" in r.out

    r = run_cli(capsys, *base, "review", "approve", "1", "--policy", str(policy), "--as", "alice")
    assert r.code == 0 and "approved" in r.out
    r = run_cli(capsys, *base, "review", "approve", "1", "--policy", str(policy), "--as", "eve")
    assert r.code == 0 and "not a maintainer" in r.out
    r = run_cli(capsys, *base, "prs", "--policy", str(policy), "--json")
    (pr,) = r.json()["prs"]
    assert pr["ci"] == "passing" and pr["approvals"] == "1/1"
    r = run_cli(capsys, *base, "prs", "--policy", str(policy))
    assert r.code == 0 and "passing" in r.out and "1/1" in r.out

    # A push after approval: the approval is stale and CI has not run on the new head.
    fork.commit_on(HEAD_A, "a.py", "x = 3\n", "adapt")
    r = run_cli(capsys, *base, "prs", "--policy", str(policy), "--json")
    (pr,) = r.json()["prs"]
    assert pr["ci"] == "none" and pr["approvals"] == "0/1"
    r = run_cli(capsys, *base, "ci", "run", "--policy", str(policy), "--json")
    assert r.code == 1
    (run,) = r.json()["runs"]
    assert run["conclusion"] == "failure" and run["exit"] == 1


def test_author_cannot_approve_own_pr(
    capsys: pytest.CaptureFixture[str], cli_env: tuple[Path, Path, LocalForge]
) -> None:
    state, policy, _ = cli_env
    r = run_cli(
        capsys,
        "--state-dir",
        str(state),
        "review",
        "approve",
        "1",
        "--policy",
        str(policy),
        "--as",
        BOT.upper(),
    )
    assert r.code == 2 and "cannot review it" in r.err


def test_ci_without_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fork: ForkRepo
) -> None:
    policy = write_policy(tmp_path, fork, None)
    r = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "ci", "run", "--policy", str(policy))
    assert r.code == 2 and "checks.test_command is not set" in r.err


def test_ci_timeout(capsys: pytest.CaptureFixture[str], tmp_path: Path, fork: ForkRepo) -> None:
    policy = write_policy(tmp_path, fork, "sleep 30")
    state = tmp_path / "state"
    forge = LocalForge(state / "forge" / "demo.sqlite", fork.bare, slug=SLUG, actor=BOT)
    forge.open_pr(HEAD_A, STABLE, "t", BODY)
    r = run_cli(
        capsys,
        "--state-dir",
        str(state),
        "ci",
        "run",
        "--policy",
        str(policy),
        "--timeout",
        "0.5",
        "--json",
    )
    assert r.code == 1 and r.json()["runs"][0]["conclusion"] == "timed_out"
    assert forge.checks(fork.shas["aaa"])[0].failed
