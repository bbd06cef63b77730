"""The local forge's SQLite file: its schema, migrated forward in place, and the connection
(WAL, a busy timeout, one immediate transaction at a time)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stablectl.forge.base import ForgeError

SCHEMA_VERSION = 4

# Each entry migrates from version i to i + 1; a new version appends, never edits.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE prs(
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL, body TEXT NOT NULL, head TEXT NOT NULL, base TEXT NOT NULL,
        head_sha TEXT NOT NULL, state TEXT NOT NULL, draft INTEGER NOT NULL,
        author TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        merge_sha TEXT);
    CREATE UNIQUE INDEX prs_open_head ON prs(head) WHERE state = 'open';
    CREATE TABLE labels(pr INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY(pr, name));
    CREATE TABLE comments(
        id INTEGER PRIMARY KEY AUTOINCREMENT, pr INTEGER NOT NULL, user TEXT NOT NULL,
        body TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX comments_time ON comments(created_at);
    CREATE TABLE reviews(
        id INTEGER PRIMARY KEY AUTOINCREMENT, pr INTEGER NOT NULL, user TEXT NOT NULL,
        state TEXT NOT NULL, commit_sha TEXT NOT NULL, body TEXT NOT NULL,
        submitted_at TEXT NOT NULL);
    CREATE TABLE checks(
        sha TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
        conclusion TEXT, url TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY(sha, name));
    CREATE TABLE releases(
        id INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        body TEXT NOT NULL, draft INTEGER NOT NULL, prerelease INTEGER NOT NULL,
        created_at TEXT NOT NULL);
    CREATE TABLE assets(
        release INTEGER NOT NULL, name TEXT NOT NULL, content_type TEXT NOT NULL,
        size INTEGER NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY(release, name));
    """,
    """
    CREATE TABLE upstream_prs(number INTEGER PRIMARY KEY, labels TEXT NOT NULL);
    CREATE TABLE upstream_pr_commits(
        sha TEXT NOT NULL, number INTEGER NOT NULL, PRIMARY KEY(sha, number));
    """,
    """
    CREATE TABLE upstream_issues(
        number INTEGER PRIMARY KEY, title TEXT NOT NULL, labels TEXT NOT NULL,
        state TEXT NOT NULL);
    """,
    # Who reported each check (one result per name *and* reporter), who merged a PR and when,
    # and the commits it had then (a JSON list of SHAs).
    # Checks recorded before have no known reporter ('') and count for nobody: run them again.
    """
    CREATE TABLE checks_v4(
        sha TEXT NOT NULL, name TEXT NOT NULL, creator TEXT NOT NULL, kind TEXT NOT NULL,
        status TEXT NOT NULL, conclusion TEXT, url TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY(sha, name, creator));
    INSERT INTO checks_v4 SELECT sha, name, '', kind, status, conclusion, url, updated_at
        FROM checks;
    DROP TABLE checks;
    ALTER TABLE checks_v4 RENAME TO checks;
    ALTER TABLE prs ADD COLUMN merged_by TEXT;
    ALTER TABLE prs ADD COLUMN merged_at TEXT;
    ALTER TABLE prs ADD COLUMN commits TEXT;
    """,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def timestamp() -> str:
    """The time stamps the local forge records (UTC, microseconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def connect(db_path: Path) -> sqlite3.Connection:
    """The forge's database at `db_path`, created or migrated to this version's schema."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=30000")
    with transaction(db):
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ForgeError(
                f"{db_path} has schema version {version}, newer than this stablectl "
                f"understands ({SCHEMA_VERSION}); upgrade stablectl"
            )
        for i in range(version, SCHEMA_VERSION):
            for stmt in MIGRATIONS[i].split(";"):
                if stmt.strip():
                    db.execute(stmt)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One immediate transaction: committed at the end, rolled back by any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
