"""The policy: a YAML file turned into a typed, validated model.

Pydantic does the validation (and gives `stablectl policy schema` a JSON Schema for free); the
loader keeps the position of every YAML node so each problem is reported as
``FILE:LINE:COL: field.path: message``. Scalars that YAML 1.1 resolves to numbers or booleans are
refused wherever the model wants a string (``3.10`` would otherwise become ``3.1``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from stablectl import __version__
from stablectl.errors import PolicyError

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")

Name = Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,40}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Upstream(_Model):
    """The project being mirrored."""

    git: str = Field(description="Git URL or local path of the upstream repository.")
    forge: str | None = Field(
        default=None, description="Forge slug `owner/name`, used for PR links and label rules."
    )
    main: str = Field(default="main", description="Upstream development branch.")
    web_url: str | None = Field(
        default=None,
        description="Base URL for links (default https://github.com/<forge>).",
    )

    @property
    def web(self) -> str | None:
        """The base URL of links to upstream commits and PRs: `web_url`, else GitHub's page of
        `forge`, else None (no links)."""
        return self.web_url or (f"https://github.com/{self.forge}" if self.forge else None)


class Fork(_Model):
    """The stable mirror this tool maintains."""

    git: str = Field(description="Git URL or local path of the fork that holds stable branches.")
    forge: str | None = Field(default=None, description="Forge slug `owner/name` of the fork.")


class ForgeSettings(_Model):
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


class Identity(_Model):
    """Committer identity of the backport commits stablectl writes."""

    name: str = Field(default="stablectl", description="Committer name of backport commits.")
    email: str = Field(
        default="stablectl@users.noreply.github.com",
        description="Committer email of backport commits (authors are kept from upstream).",
    )


def base_version(tag: str) -> str:
    """The version a release tag names: `v3.11.2` → `3.11.2`, `v250` → `250`."""
    return re.sub(r"^[^0-9]*", "", tag)


# Python 3's module renames, as a 2.7 line's path map: where a fix to the Python 3 module
# finds the same code on 2.7 (what Debian's 2.7 CVE backports do by hand).
PY27_RENAMES: dict[str, str] = {
    "Lib/http/client.py": "Lib/httplib.py",
    "Lib/http/cookiejar.py": "Lib/cookielib.py",
    "Lib/http/cookies.py": "Lib/Cookie.py",
    "Lib/http/server.py": "Lib/BaseHTTPServer.py",
    "Lib/urllib/request.py": "Lib/urllib2.py",
    "Lib/urllib/parse.py": "Lib/urlparse.py",
    "Lib/xmlrpc/client.py": "Lib/xmlrpclib.py",
    "Lib/xmlrpc/server.py": "Lib/SimpleXMLRPCServer.py",
    "Lib/html/parser.py": "Lib/HTMLParser.py",
    "Lib/socketserver.py": "Lib/SocketServer.py",
    "Lib/configparser.py": "Lib/ConfigParser.py",
    "Lib/test/test_http_cookiejar.py": "Lib/test/test_cookielib.py",
    "Lib/test/test_http_cookies.py": "Lib/test/test_cookie.py",
}


class BranchEnd(_Model):
    """When the series' own upstream branch ended, and where fixes come from after it."""

    date: dt.date = Field(description="The branch's end of life upstream (YYYY-MM-DD).")
    sources: list[str] | None = Field(
        default=None,
        description="Upstream branches to read after the series' own sources, nearest first "
        "(default: the `nearest` newer maintenance branches upstream committed to after "
        "`date`, then main).",
    )
    nearest: int = Field(
        default=3, ge=0, le=10, description="How many newer branches the default reads."
    )


class Series(_Model):
    """One stable line, anchored for life to one upstream release tag."""

    name: Name = Field(description='Series name, a string such as "3.11.2" (quote it).')
    base: str = Field(description="Upstream release tag the stable branch starts at.")
    branch: str | None = Field(
        default=None, description="Stable branch on the fork (default `<name>-stable`)."
    )
    sources: list[str] = Field(
        min_length=1,
        description="Upstream branches to take fixes from, in preference order "
        '(its own maintenance branch first, e.g. ["3.11", "main"]).',
    )
    eol: dt.date | None = Field(default=None, description="End-of-life date (YYYY-MM-DD).")
    since: dt.date | None = Field(
        default=None,
        description="Consider commits on the other sources (main) committed on or after this "
        "date (default: the base tag's date minus `lookback_days`).",
    )
    lookback_days: int = Field(
        default=30,
        ge=0,
        description="Without `since`: also consider main's commits from this many days before "
        "the base tag (fixes that missed the release); those already in it are recognised.",
    )

    path_map: dict[str, str] = Field(
        default_factory=dict,
        description="Where upstream's paths live on this line: `dir/` prefixes or exact files "
        "→ their names here (e.g. `test/fuzz/: test/fuzz-regressions/`, "
        "`Lib/test/test_zipfile/test_core.py: Lib/test/test_zipfile.py`); applied to each "
        "source before it is picked, and used by applicability to look for the code a fix "
        "changes. Default for a 2.7 line (base `v2.7.*`): Python 3's module renames "
        "(`Lib/http/client.py: Lib/httplib.py`, `Lib/urllib/request.py: Lib/urllib2.py`, …; "
        "docs/engine.md); `path_map: {}` turns them off.",
    )
    not_built: list[str] = Field(
        default_factory=list,
        description="The line's build profile: path globs a distribution building this line "
        "does not build or ship (Windows-only `PC/*`, `PCbuild/*`; bundled libraries replaced "
        "by the system's, `Modules/expat/*` with `--with-system-expat`). A fix whose code "
        "changes are all under them is `not-applicable: not built by this line`: listed with "
        "its reason, no PR.",
    )
    upstream_end: BranchEnd | None = Field(
        default=None,
        description="The series' own upstream branch has ended (2.7, 3.6, …): after it, fixes "
        "come from newer branches. Adds `upstream_end.sources` (default: the nearest newer "
        "maintenance branches upstream still committed to after the end, then main) after "
        "the series' own sources.",
    )
    patches: str | None = Field(
        default=None,
        description="A patch queue applied in order onto the base tag (a quilt directory or "
        "`series` file, an mbox, or a directory of format-patches): its patches are fixes too, "
        "with the identity their `From <sha>`, trailers or DEP-3 `Origin:` give.",
    )

    named_freely: bool = Field(
        default=False,
        description="The series name is its base tag's version (`v3.11.2` → `3.11.2`), which "
        "release versions and tags extend; set true to name a series otherwise on purpose.",
    )

    @model_validator(mode="after")
    def _renames_of_a_27_line(self) -> Series:
        if "path_map" not in self.model_fields_set and base_version(self.base).startswith("2."):
            object.__setattr__(self, "path_map", dict(PY27_RENAMES))
        return self

    @model_validator(mode="after")
    def _name_is_the_base_version(self) -> Series:
        version = base_version(self.base)
        if not self.named_freely and self.name != version:
            raise ValueError(
                f"series {self.name!r} is based on {self.base}, whose version is {version!r}: "
                f"its releases would be named {self.name}.N; name it {version!r} (or set "
                "named_freely: true)"
            )
        return self

    @property
    def stable_branch(self) -> str:
        return self.branch or f"{self.name}-stable"

    @property
    def queue_branch(self) -> str | None:
        """The cache branch holding the patch queue as commits (rebuilt every run)."""
        return f"stablectl-queue/{self.name}" if self.patches else None

    @property
    def all_sources(self) -> list[str]:
        return [*self.sources, *([self.queue_branch] if self.queue_branch else [])]


class NotesRule(_Model):
    ref: str = Field(default="refs/notes/commits", description="Notes ref to read.")
    match: str = Field(description="Regular expression searched in the note text.")

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _compile(v)


class IssuesRule(_Model):
    """The upstream issues a commit names (`gh-N`), read as they are now on the forge: CPython
    retitles an issue `[CVE-…] …` and labels it once a CVE is assigned, often long after the
    fix was committed."""

    search: str | None = Field(
        default=None,
        description="Issue search terms that narrow what is read from the forge (GitHub search "
        "syntax, e.g. `CVE in:title`; `repo:` and `is:issue` are added). Default: one search "
        "per label in `labels`. Needed when only `title` is given.",
    )
    title: str | None = Field(
        default=None, description="Regular expression searched in the issue's current title."
    )
    labels: list[str] | None = Field(
        default=None, description="The issue carries at least one of these labels now."
    )
    refresh_hours: float = Field(
        default=6,
        ge=0,
        description="How long a search's answer is reused from the state directory before "
        "it is asked again (0: every run).",
    )

    @field_validator("title")
    @classmethod
    def _title_regex(cls, v: str | None) -> str | None:
        return None if v is None else _compile(v)

    @model_validator(mode="after")
    def _searchable(self) -> IssuesRule:
        if self.title is None and not self.labels:
            raise ValueError("an issues condition needs `title` or `labels`")
        if self.search is None and not self.labels:
            raise ValueError(
                "`title` alone would read every upstream issue: give `search` terms that narrow "
                "it (e.g. 'CVE in:title')"
            )
        return self

    def queries(self) -> list[str]:
        """The forge searches this condition needs."""
        if self.search is not None:
            return [self.search]
        return [f'label:"{lb}"' for lb in self.labels or ()]

    def matches(self, title: str, labels: Sequence[str]) -> str | None:
        """Why an issue with this title and these labels matches, or None."""
        why = []
        if self.title is not None:
            m = re.search(self.title, title)
            if m is None:
                return None
            why.append(f"title {m.group(0)!r}")
        if self.labels is not None:
            hit = sorted(set(labels) & set(self.labels))
            if not hit:
                return None
            why.append(f"label {hit[0]}")
        return ", ".join(why)


class FlagRule(_Model):
    """A rule that flags upstream commits. Conditions given together must all match."""

    name: Name = Field(description="Rule name, shown in plans, PR bodies and release notes.")
    security: bool = Field(
        default=False, description="Fixes flagged by this rule are security fixes."
    )
    paths: list[str] | None = Field(
        default=None, description="Globs; matches if the commit adds or changes such a path."
    )
    message: str | None = Field(
        default=None, description="Regular expression searched in the commit message."
    )
    trailers: dict[str, str] | None = Field(
        default=None, description="Trailer key → regular expression of its value."
    )
    labels: list[str] | None = Field(
        default=None, description="Labels of the upstream PR (needs the forge)."
    )
    notes: NotesRule | None = Field(default=None, description="Git notes attached to the commit.")
    issues: IssuesRule | None = Field(
        default=None,
        description="The current title or labels of an upstream issue the commit names "
        "(`gh-N`; needs the forge).",
    )
    commits: list[Sha] | None = Field(
        default=None, description="Explicit SHAs (full or abbreviated) to flag."
    )
    advisories: str | None = Field(
        default=None,
        description="OSV advisory database (a directory, or a git URL or path fetched each run, "
        "e.g. https://github.com/psf/advisory-database): flags fixed commits, their backports, "
        "and commits naming an issue or PR the advisories reference.",
    )
    advisory_repo: str | None = Field(
        default=None,
        description="Only GIT ranges of this repository count (e.g. "
        "https://github.com/python/cpython); default: any.",
    )

    @field_validator("message")
    @classmethod
    def _message_regex(cls, v: str | None) -> str | None:
        return None if v is None else _compile(v)

    @field_validator("trailers")
    @classmethod
    def _trailer_regex(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            for value in v.values():
                _compile(value)
        return v

    @field_validator("paths")
    @classmethod
    def _globs(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            for g in v:
                if not g or g.startswith("/"):
                    raise ValueError(f"path glob {g!r} must be relative to the repository root")
        return v

    @model_validator(mode="after")
    def _has_condition(self) -> FlagRule:
        if not any(
            x is not None
            for x in (
                self.paths,
                self.message,
                self.trailers,
                self.labels,
                self.notes,
                self.issues,
                self.commits,
                self.advisories,
            )
        ):
            raise ValueError(
                "a flag rule needs at least one of paths, message, trailers, labels, notes, "
                "issues, commits, advisories"
            )
        return self

    @property
    def needs_forge(self) -> bool:
        """Whether part of this rule is decided by what the forge says (labels, issues)."""
        return self.labels is not None or self.issues is not None

    def path_matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for g in self.paths or ())


class Exclude(_Model):
    sha: Sha = Field(description="Upstream commit never to backport (any member of its fix).")
    reason: str = Field(description="Why; shown in plans.")


class Approvals(_Model):
    required: int = Field(default=1, ge=0, description="Approvals needed from maintainers.")
    teams: list[str] = Field(
        default_factory=list, description="Forge teams counted as maintainers."
    )


class Checks(_Model):
    required: list[str] = Field(
        default_factory=list, description="Check names or globs that must pass before merging."
    )
    test_command: str | None = Field(
        default=None, description="Command the local forge's CI runs in a checkout of the PR head."
    )


class CI(_Model):
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


class Commands(_Model):
    lookback_days: int = Field(
        default=30,
        ge=1,
        description="How far back sync reads comments for maintainer commands (`/stablectl …`).",
    )


class Applicability(_Model):
    """Which conflicting fixes do not concern a line (docs/engine.md, Applicability)."""

    skip: bool = Field(
        default=True,
        description="Open no PR for a not-applicable fix (it is listed in `plan`, `status` and "
        "the feed with its reason; `/stablectl backport SHA` still opens one). False: a draft "
        "conflict PR as for any conflict.",
    )
    main_only_days: int = Field(
        default=30,
        ge=1,
        description="Information only, never a verdict: a conflicting fix only on `main` is "
        'shown as "upstream did not backport it" when the series\' own maintenance branch '
        "took backports of fixes made this many days (or more) after it.",
    )
    not_code: list[str] = Field(
        default_factory=lambda: ["Misc/NEWS.d/*", "Misc/NEWS", "Misc/ACKS", "Doc/*"],
        description="Path globs that are not code (NEWS entries, documentation): a pick that "
        "changes only these on the line fixes nothing there (`not-applicable`, no CVE claimed), "
        "and a fix that changes only these is never the fix others follow up.",
    )

    def is_code(self, path: str) -> bool:
        return not any(fnmatch.fnmatchcase(path, g) for g in self.not_code)


class Prerequisites(_Model):
    """Upstream commits a conflicting fix needs first (docs/engine.md, Prerequisites)."""

    max_commits: int = Field(
        default=3,
        ge=0,
        le=10,
        description="At most this many upstream commits are stacked under one fix to make it "
        "apply (smallest set first); 0 turns the search off.",
    )
    max_candidates: int = Field(
        default=8,
        ge=1,
        le=32,
        description="Of the commits blame names, the ones writing the most conflicting lines "
        "are tried, at most this many.",
    )
    vetted_only: bool = Field(
        default=True,
        description="Only commits upstream put on a maintenance branch (a series' own or a "
        "sibling's), or whose backport is on one, may be prerequisites: a commit only on "
        "`main` is a change upstream judged unfit for a stable line (a feature, a refactor). "
        "False: any commit blame names.",
    )
    sources: int = Field(
        default=1,
        ge=1,
        le=10,
        description="The search runs for at most this many of a conflicting fix's sources, in "
        "preference order (its own branch's backport first). Prerequisites found for a farther "
        "source are commits of a farther branch, mostly `main`-only and refused by "
        "`vetted_only`; each search blames every conflicting file (a far line's plan spent "
        "most of its prerequisite time on sources after the first).",
    )
    horizon_days: int = Field(
        default=365,
        ge=0,
        description="Blame attributes lines to commits made at most this many days before the "
        "base tag (and any after it): a line older than that is never a prerequisite to pick. "
        "Keeps a far line's search from walking a decade of another branch (a 2.7 line's "
        "blame of a main fix went back to 2010).",
    )


FollowUpRef = Literal["commit", "pr", "issue", "advisory"]
FOLLOW_UP_RULE = "follow-up"  # the rule name of a follow-up's flag
FOLLOW_UP_REFS: tuple[FollowUpRef, ...] = ("commit", "pr", "issue", "advisory")


class FollowUps(_Model):
    """Later upstream commits that complete a flagged fix (docs/engine.md, Follow-ups)."""

    by: list[FollowUpRef] = Field(
        default_factory=lambda: list(FOLLOW_UP_REFS),
        description="What makes a later commit follow a flagged fix up: it names one of the "
        "fix's commits (SHA), its PR (GH-N, #N) or its issue (gh-N, bpo-N), or an advisory "
        "lists both (the later fix then follows the earlier). Empty: off.",
    )
    max_per_fix: int = Field(
        default=8,
        ge=1,
        le=50,
        description="An issue named by more later commits than this is an umbrella issue, not "
        "one change: then only commits naming the fix's SHA or PR follow it up.",
    )


REVIEW_FLOOR_HOURS = 24


class Signing(_Model):
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


class Release(_Model):
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
    "skip": "skipped",
    "tests-failed": "tests-failed",
    "prerequisite": "prerequisite",
    "follow-up": "follow-up",
}


class Policy(_Model):
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


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    return pattern


# --------------------------------------------------------------------------------------------
# Loading with positions


@dataclass(frozen=True)
class Pos:
    line: int
    col: int
    tag: str
    text: str


Path_ = tuple[str | int, ...]

_NON_STRING_TAGS = {
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
}


class _Builder:
    """Turns a composed YAML node tree into plain data, remembering each node's position."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.positions: dict[Path_, Pos] = {}
        self.key_positions: dict[Path_, Pos] = {}
        self.problems: list[str] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        mark = node.start_mark
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        self.positions[path] = Pos(mark.line + 1, mark.column + 1, node.tag, str(text))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                key_s = str(key) if not isinstance(key, str) else key
                if key is True and key_node.value in ("on", "yes", "y", "On", "Yes"):
                    key_s = key_node.value
                kpath = (*path, key_s)
                km = key_node.start_mark
                self.key_positions[kpath] = Pos(km.line + 1, km.column + 1, key_node.tag, key_s)
                if key_s in out:
                    self.problems.append(
                        f"{self.filename}:{km.line + 1}:{km.column + 1}: "
                        f"{_fmt_path(kpath)}: duplicate key"
                    )
                    continue
                out[key_s] = self.build(value_node, kpath)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._constructor.construct_object(node, deep=True)


def _fmt_path(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "(top level)"


def _message(err: ErrorDetails, pos: Pos | None) -> str:
    kind = err["type"]
    if kind == "string_type" and pos is not None and pos.tag in _NON_STRING_TAGS:
        what = _NON_STRING_TAGS[pos.tag]
        return (
            f"must be a string, but YAML reads {pos.text!r} as {what}"
            f' ({err["input"]!r}); quote it: "{pos.text}"'
        )
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _yaml_problem(filename: str, e: yaml.MarkedYAMLError) -> PolicyError:
    mark = e.problem_mark or e.context_mark
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
    return PolicyError([f"{where}: (yaml): {e.problem or e}"])


def load_policy_text(text: str, filename: str = "<policy>") -> Policy:
    """Parse and validate policy YAML; raise PolicyError listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        raise _yaml_problem(filename, e) from None
    except yaml.reader.ReaderError as e:
        # A character YAML does not allow (found by fuzzing): locate it by its offset.
        before = text[: e.position]
        line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        raise PolicyError(
            [f"{filename}:{line}:{col}: (yaml): character {e.character!r} is not allowed in YAML"]
        ) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"{filename}:1:1: (yaml): {e}"]) from None
    if node is None:
        raise PolicyError([f"{filename}:1:1: (top level): the policy file is empty"])
    builder = _Builder(filename)
    try:
        data = builder.build(node)
    except yaml.MarkedYAMLError as e:
        raise _yaml_problem(filename, e) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"{filename}:1:1: (yaml): {e}"]) from None
    if not isinstance(data, dict):
        raise PolicyError([f"{filename}:1:1: (top level): a policy is a mapping of fields"])
    problems = list(builder.problems)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc: Path_ = tuple(p for p in err["loc"] if isinstance(p, str | int))
            # Pydantic appends union/validator tags to loc in some cases; trim to a known node.
            pos = _lookup(builder, loc, err["type"])
            where = f"{filename}:{pos.line}:{pos.col}" if pos else f"{filename}:1:1"
            problems.append(f"{where}: {_fmt_path(loc)}: {_message(err, pos)}")
    if problems:
        raise PolicyError(problems)
    return policy


def _lookup(builder: _Builder, loc: Path_, kind: str) -> Pos | None:
    if kind == "extra_forbidden" and loc in builder.key_positions:
        return builder.key_positions[loc]
    probe = loc
    while probe:
        if probe in builder.positions:
            return builder.positions[probe]
        probe = probe[:-1]
    return builder.positions.get(())


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{p}: no such policy file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([f"{p}: cannot read policy: {e}"]) from None
    return load_policy_text(text, str(p))


def semantic_error(path: str | Path, problems: list[tuple[Path_, str]]) -> PolicyError:
    """A PolicyError whose lines point into the policy file."""
    positions = policy_positions(path)
    return PolicyError([format_problem(str(path), positions, loc, m) for loc, m in problems])


def policy_positions(path: str | Path) -> dict[Path_, Pos]:
    """Positions of every node of a (valid YAML) policy file, for semantic error messages."""
    p = Path(path)
    node = yaml.compose(p.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    b = _Builder(str(p))
    if node is not None:
        b.build(node)
    return b.positions


def format_problem(filename: str, positions: dict[Path_, Pos], loc: Path_, message: str) -> str:
    pos = next((positions[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in positions), None)
    where = f"{filename}:{pos.line}:{pos.col}" if pos else filename
    return f"{where}: {_fmt_path(loc)}: {message}"


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stablectl policy"
    return schema
