"""Prerequisites from a failing test run: a backport's tests fail because they use a name the
line does not have yet (found on Debian's python3.11 queue: three fixes' tests import
`test.support.control_characters_c0()`, which gh-143916 added). The test log names it
(`ImportError: cannot import name 'x' from 'm'`, `AttributeError: module 'm' has no
attribute 'x'`, `NameError: name 'x' is not defined`, `ModuleNotFoundError: No module named
'm'`); the upstream commit on the source's branch after the base that defined it is the
prerequisite the fix's PR then carries, and the tests run again on the new head.

The evidence travels in the `tests-failed` comment both CIs post (the local forge's `ci run` and
the GitHub `report` job): a fenced `stablectl-missing` block of the log's lines, so sync reads it
from the forge like any other comment, with no log download.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stablectl.gitops.git import git, output
from stablectl.gitops.scan import CommitIndex

BLOCK = "stablectl-missing"
# The log lines a missing name shows in (what the GitHub report job greps for, too).
LINE_PATTERN = r"(ImportError|ModuleNotFoundError|AttributeError|NameError): "
MAX_LINES = 20

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ImportError", re.compile(r"cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'")),
    ("AttributeError", re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<name>\w+)'")),
    ("NameError", re.compile(r"NameError: name '(?P<name>\w+)' is not defined")),
    ("ModuleNotFoundError", re.compile(r"No module named '(?P<module>[\w.]+)'")),
)


@dataclass(frozen=True)
class MissingName:
    """A name the tests use that the line lacks: `name` in `module` (either may be empty)."""

    error: str
    name: str
    module: str

    def describe(self) -> str:
        if self.name and self.module:
            return f"{self.module}.{self.name}"
        return self.name or self.module


def encode(names: Iterable[MissingName]) -> str:
    """The names as a PR marker keeps them (so later runs need not find the comment again)."""
    return ";".join(f"{m.error}:{m.module}:{m.name}" for m in names)


def decode(text: str) -> list[MissingName]:
    out = []
    for part in text.split(";"):
        bits = part.split(":")
        if len(bits) == 3 and bits[0] in {e for e, _ in _PATTERNS}:
            out.append(MissingName(bits[0], bits[2], bits[1]))
    return out


def parse_missing(text: str) -> list[MissingName]:
    """The missing names a test log (or a comment's block) shows, first seen first."""
    out: dict[MissingName, None] = {}
    for line in text.splitlines():
        for error, pat in _PATTERNS:
            m = pat.search(line)
            if m is None:
                continue
            d = m.groupdict()
            out[MissingName(error, d.get("name") or "", d.get("module") or "")] = None
            break
    return list(out)


def evidence_lines(log: str) -> list[str]:
    """The log's lines that name a missing name, as the comment's block carries them."""
    lines = [ln.strip() for ln in log.splitlines() if re.search(LINE_PATTERN, ln)]
    return list(dict.fromkeys(lines))[:MAX_LINES]


def block(lines: Iterable[str]) -> str:
    """The fenced block a `tests-failed` comment carries ("" when there is nothing)."""
    body = "\n".join(lines)
    return f"\n\nMissing names in the test log:\n\n```{BLOCK}\n{body}\n```" if body else ""


def log_evidence(log: Path) -> str:
    """The block for a `tests-failed` comment, from a CI log file ("" if it names nothing)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return block(evidence_lines(text))


def from_comment(body: str) -> list[MissingName]:
    m = re.search(rf"```{BLOCK}\n(.*?)```", body, re.S)
    return parse_missing(m.group(1)) if m else []


def module_paths(module: str) -> list[str]:
    """Where a Python module's source lives in a CPython-like tree (`Lib/`)."""
    if not module:
        return []
    rel = module.replace(".", "/")
    return [f"Lib/{rel}.py", f"Lib/{rel}/__init__.py"]


@dataclass(frozen=True)
class Definer:
    """The upstream commit that defined a missing name."""

    sha: str
    subject: str
    missing: MissingName
    path: str

    @property
    def why(self) -> str:
        return (
            f"it defines {self.missing.describe()} ({self.path}), which this fix's tests use "
            f"({self.missing.error} in the test log)"
        )


def find_definer(
    git_dir: Path, missing: MissingName, base: str, tip: str, index: CommitIndex | None = None
) -> Definer | None:
    """The oldest commit in BASE..TIP that adds a definition of the name (`def`/`class`/an
    assignment at module level), by `git log -G`: in the module's file first, then anywhere
    (a test directory on `sys.path` names modules by a shorter dotted path than `Lib/`'s). For
    a missing module: the commit that added its file. The answer never changes for the same
    commits, so `index` keeps it (table `definers`): a PR whose marker keeps the name asks
    git once, not on every run."""
    key = f"{base}..{tip}:{encode([missing])}"
    kept = index.memo_get("definers", key) if index is not None else None
    if kept is not None:
        return Definer(kept[0], kept[1], missing, kept[2]) if kept else None
    found = _find_definer(git_dir, missing, base, tip)
    if index is not None:
        index.memo_put("definers", key, [found.sha, found.subject, found.path] if found else [])
    return found


def _find_definer(git_dir: Path, missing: MissingName, base: str, tip: str) -> Definer | None:
    tail = missing.module.replace(".", "/")
    if not missing.name:
        if not tail:
            return None
        patterns = [f"*{tail}.py", f"*{tail}/__init__.py"]
        for sha, subject, files in _log(
            git_dir, ["--diff-filter=A", f"{base}..{tip}", "--", *patterns]
        ):
            return Definer(sha, subject, missing, files[0] if files else tail)
        return None
    regex = rf"^(def|async def|class) {re.escape(missing.name)}\b|^{re.escape(missing.name)} *[:=]"
    for paths in (module_paths(missing.module), ["."]):
        if not paths:
            continue
        for sha, subject, _files in _log(
            git_dir, ["-E", "-G", regex, f"{base}..{tip}", "--", *paths]
        ):
            where = _grep(git_dir, regex, sha, paths)
            if where is not None:  # it adds the definition (not only removes one)
                return Definer(sha, subject, missing, where)
    return None


def _grep(git_dir: Path, regex: str, sha: str, paths: list[str]) -> str | None:
    """The first file under `paths` that defines the name in `sha`'s tree."""
    proc = git(["grep", "-l", "-E", regex, sha, "--", *paths], git_dir=git_dir, check=False)
    text = output(proc)
    first = text.splitlines()[0] if proc.returncode == 0 and text else ""
    return first.split(":", 1)[1] if ":" in first else None


def _log(git_dir: Path, args: list[str]) -> list[tuple[str, str, list[str]]]:
    """(sha, subject, paths) of `git log --reverse` with `args`, oldest first."""
    cmd = ["log", "--reverse", "--no-merges", "--format=%x01%H%x00%s", "--name-only", *args]
    proc = git(cmd, git_dir=git_dir, check=False)
    if proc.returncode != 0:
        return []
    out: list[tuple[str, str, list[str]]] = []
    for chunk in output(proc).split("\x01")[1:]:
        head, _, rest = chunk.partition("\n")
        sha, _, subject = head.partition("\0")
        out.append((sha, subject, [ln for ln in rest.splitlines() if ln.strip()]))
    return out
