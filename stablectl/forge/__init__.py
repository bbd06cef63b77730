"""Forges stablectl talks to, behind one protocol (`base.Forge`)."""

from __future__ import annotations

import os
from pathlib import Path

from stablectl.forge.base import Forge
from stablectl.policy import Policy


def fork_token(policy: Policy) -> str | None:
    """The token for the GitHub forge and for pushing to the fork, from the variable the policy
    names; None for the local forge."""
    return os.environ.get(policy.forge.token_env) if policy.forge.kind == "github" else None


def open_forge(
    policy: Policy, state_dir: Path, *, actor: str | None = None, read_only: bool = False
) -> Forge:
    """The forge the policy names: `github` (token from the policy's variable) or `local`."""
    if policy.forge.kind == "github":
        from stablectl.forge.github import GitHubForge
        from stablectl.state import check_state

        check_state(policy, state_dir)  # before the ETag store in it is opened

        if not policy.fork.forge:
            from stablectl.errors import PolicyError

            raise PolicyError(["fork.forge: required when forge.kind is github (owner/name)"])
        return GitHubForge(
            api_url=policy.forge.api_url,
            fork=policy.fork.forge,
            upstream=policy.upstream.forge,
            token=fork_token(policy),
            token_env=policy.forge.token_env,
            read_only=read_only,
            max_rate_limit_wait=policy.forge.max_rate_limit_wait,
            state_dir=state_dir,
        )
    from stablectl.forge.local import CHECK_NAME, LocalForge, fork_path

    return LocalForge(
        local_forge_db(policy, state_dir),
        fork_path(policy.fork.git),
        slug=policy.fork.forge or policy.project,
        actor=actor or policy.controller,
        ci_identity=policy.ci_identities(CHECK_NAME)[0],
    )


def local_forge_db(policy: Policy, state_dir: Path) -> Path:
    return state_dir / "forge" / f"{policy.project}.sqlite"
