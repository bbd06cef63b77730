"""The git CLI, run in one way: against a git directory, never prompting, errors as GitError."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from stablectl.errors import GitError


def run_git(git_dir: Path | str, args: Sequence[str], *, input: str | None = None) -> str:
    """`git --git-dir GIT_DIR ARGS…`'s standard output; a GitError naming the command and git's
    last line of complaint when it fails."""
    data = None if input is None else input.encode()
    return run_git_bytes(git_dir, args, input=data).decode("utf-8", "surrogateescape")


def run_git_bytes(git_dir: Path | str, args: Sequence[str], *, input: bytes | None = None) -> bytes:
    """run_git's bytes: for output holding paths or contents that need not be UTF-8."""
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        capture_output=True,
        input=input,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]}: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout
