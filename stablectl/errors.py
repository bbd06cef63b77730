"""Errors that reach the user as one clear line, with the exit code they deserve."""

from __future__ import annotations


class StablectlError(Exception):
    """A failure stablectl reports plainly (no traceback unless --debug)."""

    exit_code = 1


class UsageError(StablectlError):
    """Bad command-line usage."""

    exit_code = 2


class PolicyError(StablectlError):
    """A policy file that cannot be used; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class GitError(StablectlError):
    """A git operation failed (unreachable remote, missing object, corrupt cache)."""


class UpstreamRewrittenError(GitError):
    """A branch tip upstream is no longer a descendant of the tip seen before."""

    def __init__(self, branch: str, old: str, new: str) -> None:
        self.branch, self.old, self.new = branch, old, new
        super().__init__(
            f"upstream rewrote branch {branch!r}: new tip {new[:12]} does not descend from "
            f"{old[:12]} seen before; refusing to continue (inspect it, then run "
            f"`stablectl cache accept-rewrite {branch}` to trust the new history)"
        )


_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret (a token, a key's text) so that `redact` hides it from every message.
    A multi-line secret is also remembered line by line: a message may hold a part of it, or
    have its newlines turned into something else (`%0A` in a workflow annotation)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)
        for line in value.splitlines():
            if len(line.strip()) >= 8:
                _SECRETS.add(line.strip())


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***` (the longest first, so a whole
    secret goes before its lines)."""
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return text
