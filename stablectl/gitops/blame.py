"""Who wrote given lines of a file, within a range of history: `git blame`, read as data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from stablectl.errors import GitError
from stablectl.gitops.git import run_git_bytes


def blame_lines(
    git_dir: Path | str,
    base: str,
    rev: str,
    path: str,
    ranges: Sequence[tuple[int, int]],
    *,
    since: int | None = None,
) -> list[tuple[str, int]]:
    """(commit, line) for each line of `path` at `rev` in `ranges` (1-based, inclusive) that a
    commit after `base` (and, with `since`, committed at or after that time) wrote. Lines
    older than that are left out; so is everything when git cannot blame (no such path)."""
    args = ["blame", "--porcelain"]
    if since is not None:
        args.append(f"--since={dt.datetime.fromtimestamp(max(since, 0), dt.UTC).isoformat()}")
    for a, b in ranges:
        args += ["-L", f"{a},{b}"]
    try:
        raw_out = run_git_bytes(git_dir, [*args, f"{base}..{rev}", "--", path])
    except (GitError, OSError):
        return []
    out: list[tuple[str, int]] = []
    boundary: set[str] = set()
    current: tuple[str, int] | None = None
    for raw in raw_out.decode("utf-8", "surrogateescape").splitlines():
        if raw.startswith("\t"):
            if current is not None and current[0] not in boundary:
                out.append(current)
            current = None
            continue
        head = raw.split(" ")
        if len(head) >= 3 and len(head[0]) == 40 and all(c in "0123456789abcdef" for c in head[0]):
            current = (head[0], int(head[2]))
        elif raw == "boundary" and current is not None:
            boundary.add(current[0])
    return out
