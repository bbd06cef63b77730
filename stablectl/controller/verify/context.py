"""What every audit of `verify` shares: the cache, the policy, the pinned keys, the forge to
read reviews from (or why there is none), one `Provenance` per series, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl.controller.identities import merged_by_controller, stablectl_prs
from stablectl.controller.verify.report import Finding, Level, VerifyReport
from stablectl.controller.workspace import Workspace
from stablectl.forge.base import Forge
from stablectl.gitops.messages import parse_message
from stablectl.gitops.provenance import Provenance
from stablectl.gitops.signing import Trust
from stablectl.policy import Policy, Series


def queue_refs(policy: Policy) -> tuple[str, ...]:
    """The cache refs of the policy's patch queues."""
    return policy.queue_refs()


@dataclass
class Audit:
    ws: Workspace
    policy: Policy
    releases_dir: Path | None = None
    trust: Trust = field(default_factory=Trust)
    forge: Forge | str | None = None  # a forge to read reviews from, or why there is none
    require_reviewed: bool = False  # an adaptation whose review is unchecked is an error
    # A commit that did not come through a merged stablectl PR is an error (else named, a
    # warning); verify's --require-reviewed sets it, sync's release gate lists them instead.
    require_through_pr: bool = False
    # Auditing the commits of a PR about to merge (sync's merge gate): they come through that
    # PR, whose approvals and checks the gate weighs.
    merging: bool = False
    report: VerifyReport = field(init=False)
    _provenance: dict[str, Provenance] = field(init=False, default_factory=dict)
    _through: dict[str, set[str] | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.report = VerifyReport(self.policy.fork.git)

    @property
    def repo(self) -> pygit2.Repository:
        return self.ws.cache.repo

    @property
    def readable_forge(self) -> Forge | None:
        return self.forge if isinstance(self.forge, Forge) else None

    def provenance(self, series: Series) -> Provenance:
        """The series' provenance: its re-picks use the series' path map, as its picks do."""
        if series.name not in self._provenance:
            self._provenance[series.name] = Provenance(
                self.repo, queue_refs(self.policy), lambda: self.ws.picker(series)
            )
        return self._provenance[series.name]

    def through_prs(self, series: Series) -> set[str] | None:
        """The upstream commits (full SHAs) that reached `series` through a merged stablectl
        backport PR, merged by the controller: what the commits the forge recorded for each
        such PR reproduce (their `(cherry picked from commit X)` trailers), never what a PR's
        body says (anyone who can write on the fork can edit a body). None without a readable
        forge."""
        if series.name in self._through:
            return self._through[series.name]
        forge = self.readable_forge
        out: set[str] | None = None
        if forge is not None:
            out = set()
            for pr in stablectl_prs(self.policy, forge, "all"):
                if not merged_by_controller(self.policy, forge, pr, series.stable_branch):
                    continue
                for _sha, message in forge.pr_commits(pr.number):
                    out |= {x for x in parse_message(message).cherry_picked_from if len(x) == 40}
        self._through[series.name] = out
        return out

    def find(self, level: Level, series: str, subject: str, what: str) -> None:
        self.report.findings.append(Finding(level, series, subject, what))
