"""The git CLI, run in one way: never prompting, in the environment given, errors as GitError
naming the command and git's last line of complaint. Every git process the product starts
(outside the local CI's configured test command) goes through `git()` here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from stablectl.errors import GitError

GitResult = subprocess.CompletedProcess[bytes]  # a finished git: returncode, stdout, stderr


def git(
    args: Sequence[str],
    *,
    git_dir: Path | str | None = None,
    cwd: Path | str | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    what: str | None = None,
) -> GitResult:
    """`git [--git-dir GIT_DIR] ARGS…` (in `cwd`, with `env` added to the environment). With
    `check`, a failure is a GitError: "WHAT: git's last line" (WHAT defaults to `git ARGS[0]`)."""
    cmd = ["git", *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        input=input,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise GitError(f"{what or f'git {args[0]}'}: {last}")
    return proc


def run_git(git_dir: Path | str, args: Sequence[str], *, input: str | None = None) -> str:
    """`git --git-dir GIT_DIR ARGS…`'s standard output (a GitError when it fails)."""
    data = None if input is None else input.encode()
    return run_git_bytes(git_dir, args, input=data).decode("utf-8", "surrogateescape")


def run_git_bytes(git_dir: Path | str, args: Sequence[str], *, input: bytes | None = None) -> bytes:
    """run_git's bytes: for output holding paths or contents that need not be UTF-8."""
    return git(args, git_dir=git_dir, input=input).stdout


def output(proc: GitResult) -> str:
    """A finished git's standard output as text."""
    return proc.stdout.decode("utf-8", "surrogateescape")
