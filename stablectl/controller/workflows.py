"""The fork's GitHub Actions workflows, rendered from the policy (jinja2), and their drift.

Workflow templates use `<< >>` and `<% %>` as jinja2 delimiters so that GitHub's own
`${{ }}` expressions stay as they are.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass
from functools import lru_cache

import jinja2

from stablectl import __version__
from stablectl.controller import missing_names as missing
from stablectl.forge.base import CIRequest
from stablectl.policy import Policy
from stablectl.templates import make_environment

# Actions pinned to full commit SHAs of their current releases (read from the public
# repositories actions/checkout, actions/setup-python, actions/upload-artifact: node24).
ACTIONS = {
    "checkout": "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1  # v7.0.1",
    "setup_python": "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97  # v7.0.0",
    "upload_artifact": "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f  # v7.0.0",
    # Read from actions/cache and actions/create-github-app-token (node24).
    "cache_restore": "actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae  # v5.0.5",
    "cache_save": "actions/cache/save@27d5ce7f107fe9357f9df03efb73ab90386fccae  # v5.0.5",
    "app_token": "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3"
    "  # v3.1.1",
}
# Signs each release's SHA256SUMS keylessly in the controller workflow (not runnable offline).
SIGSTORE = "sigstore==4.5.1"
WORKFLOW_DIR = ".github/workflows"
TEST_WORKFLOW = "stable-tests.yml"
CONTROLLER_WORKFLOW = "stablectl.yml"
POLICY_IN_FORK = ".github/stablectl/policy.yaml"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = make_environment(
        "templates/workflows",
        variable_start_string="<<",
        variable_end_string=">>",
        block_start_string="<%",
        block_end_string="%>",
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["pwshquote"] = lambda v: "'" + str(v).replace("'", "''") + "'"
    return env


@dataclass(frozen=True)
class Rendered:
    path: str  # inside the fork's tree
    text: str


def render_workflows(policy: Policy, policy_name: str) -> list[Rendered]:
    ctx = {
        "version": __version__,
        "policy_name": policy_name,
        "policy_path": POLICY_IN_FORK,
        "ci": policy.ci,
        "actions": ACTIONS,
        "token_env": policy.forge.token_env,
        "failed_label": policy.label("tests-failed"),
        "missing_pattern": missing.LINE_PATTERN,
        "missing_max": missing.MAX_LINES,
        "missing_block": missing.BLOCK,
        "sigstore": SIGSTORE,
        # One cache line per mirror; stablectl itself checks what it restores (version,
        # policy, integrity), so the key needs no version.
        "state_key": f"stablectl-state-{policy.project}",
    }
    return [
        Rendered(f"{WORKFLOW_DIR}/{name}", _env().get_template(f"{name}.j2").render(**ctx))
        for name in (TEST_WORKFLOW, CONTROLLER_WORKFLOW)
    ]


def drift(rendered: list[Rendered], current: dict[str, str | None]) -> str:
    """A unified diff from what is there (`current`: path → text or None) to what the policy
    wants; empty when they match."""
    out: list[str] = []
    for r in rendered:
        have = current.get(r.path)
        if have == r.text:
            continue
        out += difflib.unified_diff(
            (have or "").splitlines(True),
            r.text.splitlines(True),
            fromfile=f"fork:{r.path}" if have is not None else "/dev/null",
            tofile=f"policy:{r.path}",
        )
    return "".join(out)


def ci_request(policy: Policy) -> CIRequest:
    """How the fork's backport PRs get tested, for `Forge.request_tests`."""
    ci = policy.ci
    return CIRequest(ci.trigger, TEST_WORKFLOW, ci.tests_branch, ci.status_name)
