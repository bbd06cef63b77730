"""Issue flag rules: the upstream issues a rule searches for, read through the forge and kept
in the state directory for `refresh_hours`, so an hourly unattended run asks the forge once per
search and period, not once per commit.

The cache is a small SQLite file (`STATE/upstream-issues.sqlite`) keyed by the upstream
repository and the search terms. When the forge cannot answer and a stale answer is kept, that
answer is used and a warning says how old it is: a flaky API must not unflag a security fix.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from stablectl.forge.base import Forge, ForgeError, UpstreamIssue
from stablectl.policy import IssuesRule


class IssueCache:
    def __init__(
        self,
        forge: Forge,
        path: Path,
        repo: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.forge = forge
        self.path = path
        self.repo = repo
        self.clock = clock
        self.warnings: list[str] = []
        self.asked = 0  # searches sent to the forge this run
        self._memo: dict[str, dict[int, UpstreamIssue]] = {}

    def _db(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS searches(repo TEXT NOT NULL, terms TEXT NOT NULL,"
            " fetched_at REAL NOT NULL, issues TEXT NOT NULL, PRIMARY KEY(repo, terms))"
        )
        return db

    def search(self, terms: str, refresh_hours: float) -> dict[int, UpstreamIssue]:
        if terms in self._memo:
            return self._memo[terms]
        now = self.clock()
        with self._db() as db:
            row = db.execute(
                "SELECT fetched_at, issues FROM searches WHERE repo = ? AND terms = ?",
                (self.repo, terms),
            ).fetchone()
        kept = None
        if row is not None:
            kept = {
                int(i["number"]): UpstreamIssue(
                    int(i["number"]), i["title"], tuple(i["labels"]), i["state"]
                )
                for i in json.loads(row[1])
            }
            if now - float(row[0]) < refresh_hours * 3600:
                self._memo[terms] = kept
                return kept
        try:
            self.asked += 1
            found = {i.number: i for i in self.forge.upstream_issues(terms)}
        except ForgeError as e:
            if kept is None:
                raise
            hours = (now - float(row[0])) / 3600 if row is not None else 0.0
            self.warnings.append(
                f"issue search {terms!r} failed ({e}); using its answer from {hours:.1f} h ago"
            )
            self._memo[terms] = kept
            return kept
        data = json.dumps(
            [
                {"number": i.number, "title": i.title, "labels": list(i.labels), "state": i.state}
                for i in sorted(found.values(), key=lambda i: i.number)
            ]
        )
        with self._db() as db:
            db.execute(
                "INSERT INTO searches(repo, terms, fetched_at, issues) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(repo, terms) DO UPDATE SET fetched_at = excluded.fetched_at,"
                " issues = excluded.issues",
                (self.repo, terms, now, data),
            )
        self._memo[terms] = found
        return found

    def __call__(self, rule: IssuesRule) -> Mapping[int, UpstreamIssue]:
        """Every issue any of the rule's searches found (the rule then decides which match)."""
        out: dict[int, UpstreamIssue] = {}
        for terms in rule.queries():
            out.update(self.search(terms, rule.refresh_hours))
        return out
