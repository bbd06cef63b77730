"""Maintainer commands in forge comments: `/stablectl backport SHA [to SERIES]`,
`/stablectl skip`, `/stablectl retest`. Parsing is pure and total: any text gives a list of
commands or of problems, never an exception."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

CommandKind = Literal["backport", "skip", "retest", "release"]
_LINE = re.compile(r"^\s*/stablectl(?:\s+(.*?))?\s*$", re.M)
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_SERIES = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    sha: str | None = None
    series: str | None = None


@dataclass(frozen=True)
class Problem:
    text: str


def parse_commands(body: str) -> list[Command | Problem]:
    """Every `/stablectl …` line of a comment, in order. Lines inside code blocks or quotes
    (`> `) are not commands."""
    out: list[Command | Problem] = []
    fenced = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("```") or line.startswith("~~~"):
            fenced = not fenced
            continue
        if fenced or line.startswith(">"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        words = (m.group(1) or "").split()
        out.append(_parse(words))
    return out


def _parse(words: list[str]) -> Command | Problem:
    usage = (
        "usage: /stablectl backport SHA [to SERIES] | /stablectl skip | /stablectl retest | "
        "/stablectl release [SERIES]"
    )
    if not words:
        return Problem(usage)
    verb, args = words[0].lower(), words[1:]
    if verb in ("skip", "retest"):
        if args:
            return Problem(f"/stablectl {verb} takes no arguments; {usage}")
        return Command(verb)  # type: ignore[arg-type]
    if verb == "release":
        if len(args) > 1 or (args and not _SERIES.match(args[0])):
            return Problem(f"/stablectl release takes at most a series name; {usage}")
        return Command("release", None, args[0] if args else None)
    if verb == "backport":
        if not args or not _SHA.match(args[0]):
            return Problem(f"/stablectl backport needs a commit SHA (7-40 hex digits); {usage}")
        sha = args[0].lower()
        rest = args[1:]
        if not rest:
            return Command("backport", sha)
        if len(rest) == 2 and rest[0].lower() == "to" and _SERIES.match(rest[1]):
            return Command("backport", sha, rest[1])
        return Problem(f"cannot read {' '.join(rest)!r}; {usage}")
    return Problem(f"unknown command {verb!r}; {usage}")
