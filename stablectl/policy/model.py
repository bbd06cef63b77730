"""The policy file's model: the `Policy` and the sections sync and release obey (forge access,
identity, approvals, checks, CI workflows, commands, releases and their signing, labels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from stablectl import __version__
from stablectl.errors import PolicyError
from stablectl.policy.fields import Model, Name
from stablectl.policy.rules import (
    FOLLOW_UP_RULE,
    Applicability,
    Exclude,
    FlagRule,
    FollowUps,
    Prerequisites,
)
from stablectl.policy.series import Fork, Series, Upstream


class ForgeSettings(Model):
    """How stablectl talks to the forge."""

    kind: Literal["github", "local"] = Field(
        default="local", description="`github` (GitHub or GHE) or `local` (embedded SQLite)."
    )
    api_url: str = Field(
        default="https://api.github.com", description="REST API base; GHE: https://HOST/api/v3."
    )
    token_env: str = Field(
        default="GITHUB_TOKEN", description="Environment variable holding the token."
    )
    max_rate_limit_wait: int = Field(
        default=900, ge=0, description="Longest wait (s) for a rate-limit reset before stopping."
    )


class Identity(Model):
    """Committer identity of the backport commits stablectl writes."""

    name: str = Field(default="stablectl", description="Committer name of backport commits.")
    email: str = Field(
        default="stablectl@users.noreply.github.com",
        description="Committer email of backport commits (authors are kept from upstream).",
    )


# Who reports checks where the policy does not say: the local forge's `stablectl ci run`, and
# on GitHub the Actions workflows (statuses made with a workflow's GITHUB_TOKEN are created
# by `github-actions[bot]`; check runs of Actions belong to the app `github-actions`).
LOCAL_CI_IDENTITY = "stablectl-ci"
GITHUB_ACTIONS_IDENTITY = "github-actions[bot]"


def login_key(login: str | None) -> str:
    """How a forge login is compared: case-insensitively, as GitHub compares them, and only
    when it is ASCII (GitHub's logins are): `"\u212a".lower()` is `"k"`, so a look-alike login
    a forge without GitHub's rules accepts must never match a maintainer's."""
    if not login:
        return "\0"
    return login.lower() if login.isascii() else "\0" + login


class Identities(Model):
    """Who may act on the fork, by the identity the forge records (a login; an app as its bot
    login, `<slug>[bot]`). Anything written by anyone else is read as data, never obeyed:
    a required check counts only from its CI identity (a failure from anyone blocks), a merge
    or a marker only from the controller, a command or review only from `maintainers`."""

    controller: str | None = Field(
        default=None,
        description="The forge login stablectl acts as (its PRs, comments and merges): the "
        "token's user, or `github-actions[bot]` when the controller workflow runs with its "
        "GITHUB_TOKEN, or `<app-slug>[bot]` for a GitHub App. Default: `identity.name`.",
    )
    ci: list[str] = Field(
        default_factory=list,
        description="Identities whose statuses and check runs count for the required checks, "
        "and whose `tests-failed` comments are read. Default: `stablectl-ci` on the local "
        "forge, `github-actions[bot]` on GitHub.",
    )
    checks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per required check (name or glob), the identities that may report it, "
        "where they differ from `ci`.",
    )


class Approvals(Model):
    required: int = Field(default=1, ge=0, description="Approvals needed from maintainers.")
    teams: list[str] = Field(
        default_factory=list, description="Forge teams counted as maintainers."
    )


class Checks(Model):
    required: list[str] = Field(
        default_factory=list, description="Check names or globs that must pass before merging."
    )
    test_command: str | None = Field(
        default=None, description="Command the local forge's CI runs in a checkout of the PR head."
    )


class CI(Model):
    """The fork's GitHub Actions workflows (`stablectl workflows`, `stablectl init`)."""

    trigger: Literal["dispatch", "app"] = Field(
        default="dispatch",
        description="How backport PRs get tested: `dispatch` (sync dispatches stable-tests for "
        "each new PR head; works with the workflow's own GITHUB_TOKEN) or `app` (PRs opened "
        "with a GitHub App token trigger `pull_request` runs; the workflow must be on the "
        "stable branches).",
    )
    tests_branch: str = Field(
        default="stablectl/tests",
        description="`trigger: dispatch`: the fork branch stable-tests runs are dispatched on "
        "(it holds only the workflows). Backport code runs there, so anything it writes to "
        "the Actions cache stays in that branch's scope, never in the controller's.",
    )
    control_branch: str = Field(
        default="main",
        description="Fork branch holding the policy and the workflows (the default branch).",
    )
    schedule: str = Field(
        default="17 */4 * * *", description="Cron schedule of the controller workflow (UTC)."
    )
    runners: list[str] = Field(
        default_factory=lambda: ["ubuntu-24.04"],
        min_length=1,
        description="Test matrix: runner labels (Linux always; macos-*/windows-* optional).",
    )
    configure: list[str] = Field(
        default_factory=lambda: ["--with-pydebug"],
        description="./configure options (POSIX runners).",
    )
    test_args: list[str] = Field(
        default_factory=lambda: [
            "-j0",
            "--fail-env-changed",
            "-W",  # a failed test's output (its traceback names what is missing: missing.py)
            "--timeout=1200",
            "-u",
            "all,-cpu,-network,-urlfetch",
        ],
        description="Arguments of `python -m test`. `-W` prints a failed test's output: the "
        "traceback that names a missing name, which sync turns into a prerequisite.",
    )
    timeout_minutes: int = Field(default=150, ge=10, description="Job time limit.")
    status_name: str = Field(
        default="stable-tests",
        description="Commit status the test workflow reports on the PR head (gate on it).",
    )
    python: str = Field(default="3.12", description="Python running stablectl in Actions.")
    app_client_id_secret: str = Field(
        default="STABLECTL_APP_CLIENT_ID",
        description="`trigger: app`: the repository secret holding the GitHub App's client ID.",
    )
    app_private_key_secret: str = Field(
        default="STABLECTL_APP_PRIVATE_KEY",
        description="`trigger: app`: the repository secret holding the GitHub App's private key.",
    )
    install: str = Field(
        default=f"stablectl=={__version__}",
        description="pip requirement installing stablectl in the controller workflow: by "
        "default the version that rendered the workflows (`stablectl==X.Y.Z`); a VCS URL at a "
        "commit SHA works too.",
    )


class Commands(Model):
    lookback_days: int = Field(
        default=30,
        ge=1,
        description="How far back sync reads comments for maintainer commands (`/stablectl …`).",
    )


REVIEW_FLOOR_HOURS = 24


class Signing(Model):
    """Who signs the releases. The private key never appears in the policy: sync reads its path
    from `STABLECTL_SIGNING_KEY` (format `STABLECTL_SIGNING_FORMAT`: `ssh` or `openpgp`)."""

    required: bool = Field(
        default=False,
        description="Release tags and SHA256SUMS must be signed by a pinned key: sync refuses "
        "to tag without a key, verify fails on an unsigned or unknown signature.",
    )
    allowed_signers: str | None = Field(
        default=None,
        description="ssh allowed-signers file (`ssh-keygen -Y`) pinning the release keys; "
        "a path like `patches`.",
    )
    openpgp_keyring: str | None = Field(
        default=None,
        description="OpenPGP public keyring (binary or armored export) pinning the release "
        "keys; a path like `patches`.",
    )


class Release(Model):
    tag: str = Field(
        default="v{series}.{n}",
        description="Release tag scheme: {series} is the series name, {n} counts from 1.",
    )
    tarball: str = Field(
        default="{project}-{version}",
        description="Tarball stem: {project} and {version} (e.g. 3.11.2.1) expand.",
    )
    trigger: Literal["security", "manual"] = Field(
        default="security",
        description="`security`: release when a merged security fix is unreleased; "
        "`manual`: only on request.",
    )
    quiet_period_hours: int = Field(
        default=0, ge=0, description="Wait this long after the last merge before releasing."
    )
    review_hours: int = Field(
        default=48,
        ge=0,
        description=f"Review window of a release PR before it is merged and tagged; at least "
        f"{REVIEW_FLOOR_HOURS} unless `short_review` gives the reason.",
    )
    short_review: str | None = Field(
        default=None,
        description="Why `review_hours` may be under the floor (a demo, an embargo lifted "
        "with downstreams' agreement); release PRs and manifests state it.",
    )
    signing: Signing = Field(
        default_factory=lambda: Signing(), description="Keys that sign and verify releases."
    )

    @model_validator(mode="after")
    def _review_floor(self) -> Release:
        if self.review_hours < REVIEW_FLOOR_HOURS and not self.short_review:
            raise ValueError(
                f"review_hours {self.review_hours} is under the floor of {REVIEW_FLOOR_HOURS} "
                "hours downstreams get to review a release; raise it, or give the reason in "
                "short_review"
            )
        return self

    feed: str | None = Field(
        default=None,
        description="Directory (relative to the state directory unless absolute) where sync "
        "rewrites status.json, feed.atom and index.html after each release.",
    )
    merge_method: Literal["rebase", "fast-forward"] = Field(
        default="rebase",
        description="How backport PRs are merged; both keep the cherry-pick commit and trailer.",
    )


# Label names by role, where the policy does not name them.
DEFAULT_LABELS = {
    "backport": "backport",
    "security": "security",
    "conflicts": "conflicts",
    "to-adapt": "to-adapt",
    "adapted": "adapted",
    "skip": "skipped",
    "tests-failed": "tests-failed",
    "prerequisite": "prerequisite",
    "follow-up": "follow-up",
}


class Policy(Model):
    """A stablectl policy file."""

    version: Literal[1] = Field(default=1, description="Policy format version.")
    project: Name = Field(description="Short project name (cache directory, tarball names).")
    upstream: Upstream = Field(description="The project being mirrored.")
    fork: Fork = Field(description="The stable mirror.")
    forge: ForgeSettings = Field(default_factory=ForgeSettings, description="Forge access.")
    identity: Identity = Field(default_factory=Identity, description="Committer identity.")
    series: list[Series] = Field(min_length=1, description="Stable lines, one per base tag.")
    flags: list[FlagRule] = Field(
        min_length=1, description="Rules that flag upstream commits (any rule flags)."
    )
    exclude: list[Exclude] = Field(
        default_factory=list, description="Fixes never to backport, with reasons."
    )
    maintainers: list[str] = Field(
        default_factory=list,
        description="Forge logins whose reviews count and whose commands are obeyed.",
    )
    identities: Identities = Field(
        default_factory=Identities,
        description="Who may act on the fork: the controller, the CI (per check).",
    )
    approvals: Approvals = Field(default_factory=Approvals, description="The approval gate.")
    checks: Checks = Field(default_factory=Checks, description="Checks gating merges.")
    release: Release = Field(default_factory=Release, description="Point releases.")
    ci: CI = Field(default_factory=CI, description="The fork's GitHub Actions workflows.")
    commands: Commands = Field(
        default_factory=Commands, description="Maintainer commands in forge comments."
    )
    applicability: Applicability = Field(
        default_factory=Applicability,
        description="Conflicting fixes that do not concern a line: listed, not opened as PRs.",
    )
    prerequisites: Prerequisites = Field(
        default_factory=Prerequisites,
        description="Upstream commits a conflicting fix needs first, found by blame and "
        "picked in the fix's PR.",
    )
    follow_ups: FollowUps = Field(
        default_factory=FollowUps,
        description="Later upstream commits naming a flagged fix (its commit, PR or issue) are "
        "flagged too, by the rule `follow-up`, security if the fix is.",
    )
    labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS),
        description="Label names stablectl applies, by role.",
    )

    @model_validator(mode="after")
    def _unique(self) -> Policy:
        _unique_names([s.name for s in self.series], "series name")
        _unique_names([s.stable_branch for s in self.series], "stable branch")
        _unique_names([r.name for r in self.flags], "flag rule name")
        if FOLLOW_UP_RULE in {r.name for r in self.flags}:
            raise ValueError(
                f"flag rule name {FOLLOW_UP_RULE!r} is stablectl's own (follow_ups); rename it"
            )
        return self

    def label(self, role: str) -> str:
        """The label name for a role (`backport`, `security`, `conflicts`, `skip`,
        `tests-failed`, `prerequisite`, `follow-up`): the policy's, or the default where the policy
        names only some."""
        return self.labels.get(role, DEFAULT_LABELS.get(role, role))

    @property
    def controller(self) -> str:
        """The forge login stablectl acts as (`identities.controller`, else `identity.name`)."""
        return self.identities.controller or self.identity.name

    def is_controller(self, login: str | None) -> bool:
        return login_key(login) == login_key(self.controller)

    def ci_identities(self, check: str = "") -> list[str]:
        """Who may report check `check` (any required check where `check` is empty)."""
        import fnmatch

        for pattern, who in self.identities.checks.items():
            if check and fnmatch.fnmatchcase(check, pattern):
                return list(who)
        if self.identities.ci:
            return list(self.identities.ci)
        return [LOCAL_CI_IDENTITY if self.forge.kind == "local" else GITHUB_ACTIONS_IDENTITY]

    def is_maintainer(self, login: str | None) -> bool:
        """`login` is one of the policy's maintainers (compared as `login_key` says)."""
        return login_key(login) in {login_key(m) for m in self.maintainers}

    def is_ci(self, login: str | None, check: str = "") -> bool:
        return login_key(login) in {login_key(x) for x in self.ci_identities(check)}

    def queue_refs(self) -> tuple[str, ...]:
        """The cache refs of the series' patch queues (fetched from upstream's URL, but
        downstream patches, never upstream's changes)."""
        return tuple(
            f"refs/remotes/upstream/{s.queue_branch}" for s in self.series if s.queue_branch
        )

    @property
    def exclusions(self) -> dict[str, str]:
        """The `exclude` entries as lower-case SHA prefix -> reason."""
        return {e.sha.lower(): e.reason for e in self.exclude}

    def get_series(self, name: str) -> Series:
        for s in self.series:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.series)
        raise PolicyError([f"unknown series {name!r} (policy has: {known})"])


def _unique_names(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"duplicate {what} {n!r}")
        seen.add(n)
