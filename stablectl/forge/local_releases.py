"""The local forge's releases and their assets (a mixin of `LocalForge`): rows of its SQLite
file, asset bytes kept in the database, a release only for a tag the fork has."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pygit2

from stablectl.forge.base import Asset, ConflictError, ForgeStats, NotFoundError, Release
from stablectl.forge.local_db import timestamp


class LocalReleases:
    slug: str
    stats: ForgeStats
    _db: sqlite3.Connection
    fork_git: Path
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _repo: Callable[[], pygit2.Repository]
    _url: Callable[[str, int], str]

    def _release(self, row: sqlite3.Row) -> Release:
        assets = tuple(
            Asset(a["name"], a["size"], self._url("releases", row["id"]) + f"/{a['name']}")
            for a in self._db.execute(
                "SELECT name, size FROM assets WHERE release = ? ORDER BY name", (row["id"],)
            )
        )
        return Release(
            row["id"],
            row["tag"],
            row["name"],
            row["body"],
            bool(row["draft"]),
            bool(row["prerelease"]),
            self._url("releases", row["id"]),
            assets,
        )

    def get_release(self, tag: str) -> Release | None:
        with self.stats.op("get_release"):
            row = self._db.execute("SELECT * FROM releases WHERE tag = ?", (tag,)).fetchone()
            return self._release(row) if row is not None else None

    def create_release(
        self, tag: str, name: str, body: str, *, draft: bool = False, prerelease: bool = False
    ) -> Release:
        with self.stats.op("create_release", write=True):
            if self._repo().references.get(f"refs/tags/{tag}") is None:
                raise NotFoundError(f"cannot create release: tag {tag!r} is not on {self.slug}")
            with self._tx() as db:
                db.execute(
                    "INSERT OR IGNORE INTO releases(tag, name, body, draft, prerelease,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (tag, name, body, int(draft), int(prerelease), timestamp()),
                )
            row = self._db.execute("SELECT * FROM releases WHERE tag = ?", (tag,)).fetchone()
            return self._release(row)

    def upload_asset(self, release: Release, name: str, data: bytes, content_type: str) -> Asset:
        with self.stats.op("upload_asset", write=True), self._tx() as db:
            digest = hashlib.sha256(data).hexdigest()
            row = db.execute(
                "SELECT sha256 FROM assets WHERE release = ? AND name = ?", (release.id, name)
            ).fetchone()
            if row is not None and row[0] != digest:
                raise ConflictError(
                    f"release {release.tag} already has an asset {name!r} with other content"
                )
            if row is None:
                db.execute(
                    "INSERT INTO assets(release, name, content_type, size, sha256, data)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (release.id, name, content_type, len(data), digest, data),
                )
        return Asset(name, len(data), self._url("releases", release.id) + f"/{name}")
