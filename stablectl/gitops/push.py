"""Pushing to the fork with the git CLI, refusing anything but what stablectl may do.

- Stable branches only fast-forward (never `--force`); a rejection is an error.
- stablectl's own branches (`stablectl/...`) are replaced with `--force-with-lease` naming the
  value this run saw, so a concurrent run or a maintainer's push is never clobbered blindly.
- Every ref update is checked in `--porcelain` output: a ref the server declines (a hook,
  branch protection) is an error even when git exits 0.
- Over HTTPS the token goes in an `http.extraheader` set through GIT_CONFIG_* variables: never
  on the command line, never in a URL, never printed.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stablectl.errors import GitError, redact

ZERO = "0" * 40
OWN_PREFIX = "refs/heads/stablectl/"


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    new: str | None  # None deletes
    old: str | None  # the value this run saw (None: must not exist)


class ForkPusher:
    def __init__(self, repo_path: Path, url: str, token: str | None = None) -> None:
        self.repo_path = repo_path
        self.url = url
        self.token = token

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        if self.token and self.url.startswith("https://"):
            cred = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0=f"http.{self.url}.extraheader",
                GIT_CONFIG_VALUE_0=f"AUTHORIZATION: basic {cred}",
            )
        return env

    def push(self, updates: list[RefUpdate]) -> None:
        """Apply the updates atomically (all or none, where the server supports it)."""
        if not updates:
            return
        failed = self._push(updates, atomic=True)
        if failed:
            raise GitError(
                redact(
                    "push to the fork was refused: "
                    + "; ".join(f"{ref}: {why}" for ref, why in failed.items())
                )
            )

    def push_each(self, updates: list[RefUpdate]) -> dict[str, str]:
        """Apply the updates in one connection, each on its own; returns the refused ones
        (ref → reason). One `git push` for many branches costs about what one costs."""
        return self._push(updates, atomic=False) if updates else {}

    def _push(self, updates: list[RefUpdate], *, atomic: bool) -> dict[str, str]:
        args = ["git", "--git-dir", str(self.repo_path), "push", "--porcelain"]
        if atomic:
            args.append("--atomic")
        specs = []
        for u in updates:
            own = u.ref.startswith(OWN_PREFIX)
            if u.new is None:
                if not own:
                    raise GitError(f"refusing to delete {u.ref}: not a stablectl branch")
                args.append(f"--force-with-lease={u.ref}:{u.old or ''}")
                specs.append(f":{u.ref}")
            elif own:
                args.append(f"--force-with-lease={u.ref}:{u.old or ''}")
                specs.append(f"+{u.new}:{u.ref}")
            else:
                # Stable branches and tags: fast-forward or create only.
                specs.append(f"{u.new}:{u.ref}")
        proc = subprocess.run(
            [*args, self.url, *specs], capture_output=True, text=True, env=self._env()
        )
        wanted = {u.ref for u in updates}
        done: set[str] = set()
        failed: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or ":" not in parts[1]:
                continue
            ref = parts[1].split(":", 1)[1]
            if parts[0].strip() == "!":
                failed[ref] = parts[2]
            else:
                done.add(ref)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"git push exited {proc.returncode}"]
            for ref in wanted - done:
                failed.setdefault(ref, redact(lines[-1]))
        return failed
