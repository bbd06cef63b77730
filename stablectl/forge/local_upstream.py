"""What upstream's forge would tell the local forge: the labels of upstream PRs (and the commits
each produced) and the current titles and labels of upstream issues. GitHub knows these by
itself; offline, whoever runs the local forge records them here (`LocalForge.upstream`), and
the label and issue flag rules read them back through the `Forge` protocol."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from stablectl.forge.base import ForgeStats, UpstreamIssue, search_matches
from stablectl.forge.local_db import transaction


class LocalUpstream:
    """Upstream PRs and issues recorded in the local forge's database."""

    def __init__(self, db: sqlite3.Connection, stats: ForgeStats) -> None:
        self._db = db
        self.stats = stats

    def record_pr(self, number: int, labels: Sequence[str], shas: Sequence[str]) -> None:
        """Upstream PR `number` carried `labels` and produced the commits `shas`."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT INTO upstream_prs(number, labels) VALUES (?, ?) ON CONFLICT(number)"
                " DO UPDATE SET labels = excluded.labels",
                (number, json.dumps(sorted(set(labels)))),
            )
            db.executemany(
                "INSERT OR IGNORE INTO upstream_pr_commits(sha, number) VALUES (?, ?)",
                [(s, number) for s in shas],
            )

    def record_issue(
        self, number: int, title: str, labels: Sequence[str] = (), state: str = "open"
    ) -> None:
        """Upstream issue `number` is titled `title` and labelled `labels` now."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT INTO upstream_issues(number, title, labels, state) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(number) DO UPDATE SET title = excluded.title,"
                " labels = excluded.labels, state = excluded.state",
                (number, title, json.dumps(sorted(set(labels))), state),
            )

    def pr_labels(self, sha: str) -> list[str]:
        """The labels of every recorded upstream PR that produced commit `sha`."""
        with self.stats.op("upstream_pr_labels"):
            labels: set[str] = set()
            for (text,) in self._db.execute(
                "SELECT p.labels FROM upstream_pr_commits c JOIN upstream_prs p"
                " ON p.number = c.number WHERE c.sha = ?",
                (sha,),
            ):
                labels.update(json.loads(text))
            return sorted(labels)

    def labeled_prs(self, label: str) -> set[int]:
        """The recorded upstream PRs carrying `label`."""
        with self.stats.op("labeled_prs"):
            return {
                int(n)
                for n, text in self._db.execute("SELECT number, labels FROM upstream_prs")
                if label in json.loads(text)
            }

    def issues(self, terms: str) -> list[UpstreamIssue]:
        """The recorded upstream issues a forge search for `terms` would find."""
        with self.stats.op("upstream_issues"):
            rows = self._db.execute(
                "SELECT number, title, labels, state FROM upstream_issues ORDER BY number"
            ).fetchall()
        issues = [UpstreamIssue(n, t, tuple(json.loads(lb)), st) for n, t, lb, st in rows]
        return [i for i in issues if search_matches(terms, i.title, i.labels)]
