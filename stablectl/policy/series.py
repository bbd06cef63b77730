"""What is mirrored: upstream, the fork, and the stable series (each anchored to one release tag,
its sources, its path map and build profile, the end of its own upstream branch)."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import Field, model_validator

from stablectl.policy.fields import Model, Name


class Upstream(Model):
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


class Fork(Model):
    """The stable mirror this tool maintains."""

    git: str = Field(description="Git URL or local path of the fork that holds stable branches.")
    forge: str | None = Field(default=None, description="Forge slug `owner/name` of the fork.")


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


class BranchEnd(Model):
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


class Downstream(Model):
    """A distribution's (or a fork's) own adaptations of upstream fixes, offered after
    upstream's sources: each patch is matched to the fix it adapts and applied alone."""

    name: str = Field(
        description='Who published it, shown in PRs and provenance (e.g. "Debian python2.7 '
        '2.7.18-8+deb11u1").'
    )
    patches: str | None = Field(
        default=None,
        description="A quilt directory (or its `series` file; DEP-3 headers `Origin:`, `Bug:`), "
        "an RPM `.spec` whose `PatchNNNN:` lines name the patches beside it (or in "
        "`../SOURCES/`), or a directory of `*.patch`/`*.diff` files.",
    )
    git: str | None = Field(
        default=None, description="A fork's repository (URL or path), with `branch`."
    )
    branch: str | None = Field(
        default=None,
        description="With `git`: the branch whose commits after the series' base tag are "
        "the adaptations (ActiveState-style).",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Downstream:
        if (self.patches is None) == (self.git is None):
            raise ValueError("give either `patches` or `git` (with `branch`)")
        if self.git is not None and not self.branch:
            raise ValueError("`git` needs `branch`")
        return self


class Series(Model):
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

    downstream: list[Downstream] = Field(
        default_factory=list,
        description="Adaptations others published of the same upstream fixes (Debian's "
        "`debian/patches`, an RPM spec's patches, a fork's branch), in preference order: "
        "a fix that conflicts is offered the first that applies alone onto the line, as an "
        "adaptation for review (docs/engine.md, Downstream adaptations).",
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
