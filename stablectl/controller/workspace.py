"""The workspace: a policy bound to its state directory (the git cache, the commit index,
the upstream issue cache, the advisory databases), checked once when opened. Every command
opens one; planning (planner.py) and sync read it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pygit2

from stablectl.controller.advisories import AdvisoryIndex, load_advisories
from stablectl.controller.downstream import (
    DownstreamPatch,
    downstream_ref,
    mirror_resolutions,
    read_downstream,
)
from stablectl.controller.identities import backports, merged_by_controller
from stablectl.controller.issue_cache import IssueCache
from stablectl.controller.plan import Plan
from stablectl.controller.planner import Planner
from stablectl.controller.selection import Selector
from stablectl.errors import StablectlError
from stablectl.forge.base import Forge
from stablectl.gitops.cache import UPSTREAM_TAGS, Progress, RepoCache
from stablectl.gitops.messages import adapted_of
from stablectl.gitops.objects import NoteReader
from stablectl.gitops.objects import commit as get_commit
from stablectl.gitops.pick import Committer, Picker
from stablectl.gitops.provenance import Provenance
from stablectl.gitops.scan import CommitIndex
from stablectl.policy import Policy, Series
from stablectl.state import check_state


def default_state_dir() -> Path:
    env = os.environ.get("STABLECTL_STATE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stablectl"


class Workspace:
    """A policy bound to its state: the cache, the commit index, the upstream issue cache,
    the advisory databases and the state check, opened once per command (`with
    Workspace(...) as ws:`) and closed on the way out."""

    def __init__(
        self,
        policy: Policy,
        state_dir: Path,
        *,
        progress: Progress | None = None,
        committer_time: int | None = None,
        forge: Forge | None = None,
    ) -> None:
        self.policy = policy
        self.state_dir = state_dir
        self.progress = progress
        self.cache = RepoCache(state_dir / "cache" / f"{policy.project}.git")
        self._index: CommitIndex | None = None
        self.committer_time = committer_time
        self._advisories: dict[str, AdvisoryIndex] | None = None
        self.forge = forge  # for label and issue rules: what the upstream forge says
        self._issues: IssueCache | None = None
        self._provenance: dict[str, Provenance] = {}
        self.queue_problems: list[str] = []
        self._downstream: dict[str, list[DownstreamPatch]] = {}
        # The state is a cache from anywhere (an actions/cache entry, an older stablectl):
        # checked before any store in it is opened.
        self.state_notes = check_state(policy, state_dir)

    @property
    def index(self) -> CommitIndex:
        if self._index is None:
            self._index = CommitIndex(
                self.cache.repo, self.state_dir / "cache" / f"{self.policy.project}.sqlite"
            )
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan(
        self,
        series: list[str] | None = None,
        *,
        on_series: Callable[[str, int, int], None] | None = None,
    ) -> Plan:
        """The plan of `series` (all by default): planner.Planner over this workspace."""
        return Planner(self).plan(series, on_series=on_series)

    def fetch(self) -> None:
        """Bring the cache up to date with upstream and the fork; notice rewrites."""
        self.cache = RepoCache.open_or_init(self.cache.path)
        self.close()  # the index holds the old repository object; reopen it on demand
        p = self.policy
        self.cache.fetch_upstream(p.upstream.git, self.progress)
        self.cache.fetch_fork(p.fork.git, self.progress)
        branches = {p.upstream.main} | {b for s in p.series for b in s.sources}
        self.cache.check_and_record_tips(sorted(branches), [s.base for s in p.series])
        for s in p.series:
            for i, d in enumerate(s.downstream):
                if d.git is not None and d.branch is not None:
                    self.cache.fetch_ref(d.git, d.branch, downstream_ref(s.name, i))
        self.build_queues()

    def downstream(self, series: Series) -> list[DownstreamPatch]:
        """The series' downstream adaptations, read once per workspace (what cannot be read
        is reported with the patch queues' problems)."""
        if series.name not in self._downstream:
            base = self.cache.upstream_tag(series.base)
            found = self._mirror_resolutions(series)
            for i, d in enumerate(series.downstream):
                ref = downstream_ref(series.name, i)
                patches, problems = read_downstream(d, self.cache.path, base, ref)
                found += patches
                self.queue_problems += [f"series {series.name}: {x}" for x in problems]
            self._downstream[series.name] = found
        return self._downstream[series.name]

    def _mirror_resolutions(self, series: Series) -> list[DownstreamPatch]:
        """What people resolved on this mirror's other lines, offered first: the mirror's
        own reviewed work before any distribution's."""
        out: list[DownstreamPatch] = []
        for other in self.policy.series:
            tip = self.cache.resolve(f"refs/remotes/fork/{other.stable_branch}")
            base = self.cache.upstream_tag(other.base)
            if other.name == series.name or tip is None or base is None:
                continue

            def carried(sha: str, o: Series = other) -> bool:
                return self.carries(o, sha) and self._went_through_its_pr(sha)

            repo = self.cache.repo
            out += mirror_resolutions(repo, other, tip, base, carried, series.path_map)
        return out

    def _went_through_its_pr(self, sha: str) -> bool:
        """A merged adaptation's content is what went through the PR its record cites: one of
        that PR's own commits records the same interdiff (a commit pushed straight that cites
        a merged PR of the same fix carries content nobody reviewed). False with no forge."""
        rec = adapted_of(get_commit(self.cache.repo, sha).message)
        if self.forge is None or rec is None or rec.pr is None or rec.interdiff is None:
            return False
        try:
            commits = self.forge.pr_commits(rec.pr)
        except StablectlError:
            return False
        return any(
            (theirs := adapted_of(message)) is not None and theirs.interdiff == rec.interdiff
            for _sha, message in commits
        )

    def build_queues(self) -> None:
        """Each series' patch queue as a chain of commits on its base tag, under
        refs/remotes/upstream/stablectl-queue/<series> (rebuilt after every fetch)."""
        from stablectl.gitops.patches import build_chain, read_queue

        self.queue_problems = []
        for s in self.policy.series:
            if not s.patches or not s.queue_branch:
                continue
            base = self.cache.upstream_tag(s.base)
            path = Path(s.patches).expanduser()
            if base is None or not path.exists():
                self.queue_problems.append(
                    f"series {s.name}: patch queue {s.patches} "
                    + ("not found" if not path.exists() else f"needs tag {s.base}")
                )
                continue
            ident = self.policy.identity
            tip, problems = build_chain(
                self.cache.path, base, read_queue(path), (ident.name, ident.email)
            )
            self.queue_problems += [f"series {s.name}: {x}" for x in problems]
            self.cache.repo.references.create(
                f"refs/remotes/upstream/{s.queue_branch}", pygit2.Oid(hex=tip), force=True
            )

    def semantic_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Policy problems only the repository can reveal: missing tags and branches."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        p = self.policy
        if self.cache.upstream_branch(p.upstream.main) is None:
            out.append((("upstream", "main"), f"upstream has no branch {p.upstream.main!r}"))
        for i, s in enumerate(p.series):
            if self.cache.upstream_tag(s.base) is None:
                out.append((("series", i, "base"), f"upstream has no tag {s.base!r}"))
            for j, b in enumerate(s.sources):
                if self.cache.upstream_branch(b) is None:
                    known = ", ".join(self.cache.upstream_branches()[:8])
                    out.append(
                        (("series", i, "sources", j), f"upstream has no branch {b!r} ({known})")
                    )
        return out

    def picker(self, series: Series | None = None) -> Picker:
        """A picker (for `series`: with its `path_map`)."""
        ident = self.policy.identity
        return Picker(
            self.cache.repo,
            Committer(ident.name, ident.email, self.committer_time),
            memo=self.index,
            path_map=series.path_map if series is not None else None,
        )

    def selector(self) -> Selector:
        cache = self.cache

        def upstream_ref(ref: str) -> str | None:
            return cache.peel(ref) if ref.startswith(UPSTREAM_TAGS) else cache.resolve(ref)

        def stable_tip(series: Series) -> str | None:
            return cache.fork_branch(series.stable_branch)

        notes_refs = sorted({r.notes.ref for r in self.policy.flags if r.notes})
        notes_tips = ",".join(f"{r}={cache.resolve(r)}" for r in notes_refs)
        return Selector(
            self.policy,
            self.index,
            upstream_ref=upstream_ref,
            stable_tip=stable_tip,
            note_of=NoteReader(cache.repo.path),
            notes_tips=notes_tips,
            advisories=self.advisories(),
            labeled_prs=self.forge.labeled_prs if self.forge is not None else None,
            issues=self.issue_cache,
            carries=self.carries,
            upstream_branches=cache.upstream_branches,
        )

    def carries(self, series: Series, sha: str) -> bool:
        """Whether stable commit `sha` carries the upstream change its trailer names: its
        re-pick gives exactly its tree, or its recorded adaptation has exactly its interdiff
        and came through its PR, which the controller merged (an adaptation pushed straight
        applies nothing: its "change" could be the fix undone; whether a maintainer approved
        it is the merge gate's and verify's question). Without a forge to read, a recorded
        adaptation counts as before. A commit's yes never changes, so it is remembered."""
        key = f"{series.name}|{sha}"
        if self.index.memo_get("carries", key) is True:
            return True
        if series.name not in self._provenance:
            self._provenance[series.name] = Provenance(
                self.cache.repo, self.policy.queue_refs(), lambda: self.picker(series)
            )
        r = self._provenance[series.name].explain(sha)
        recorded = adapted_of(get_commit(self.cache.repo, sha).message) if r.adapted else None
        ok = r.verbatim or (
            recorded is not None
            and r.source is not None
            and r.source.startswith(recorded.source)
            and recorded.interdiff == r.change.digest
            and self._merged_through(series, recorded.pr, r.source)
        )
        if ok and (r.verbatim or self.forge is not None):
            # A yes reached without a forge (a recorded adaptation taken on its word) is
            # never remembered: a later run that can read the forge would trust it.
            self.index.memo_put("carries", key, True)
        return ok

    def _merged_through(self, series: Series, pr: int | None, source: str) -> bool:
        """PR `pr` is the backport of `source` into the series' branch and the controller
        merged it (True where no forge can be read)."""
        if self.forge is None:
            return True
        if pr is None:
            return False
        try:
            pull = self.forge.get_pr(pr)
            return merged_by_controller(
                self.policy, self.forge, pull, series.stable_branch
            ) and backports(self.cache.repo, self.forge, pull, source)
        except StablectlError:
            return False

    @property
    def issue_cache(self) -> IssueCache | None:
        """The issue searches of issue rules, kept in the state directory (needs the forge)."""
        if self.forge is None:
            return None
        if self._issues is None:
            self._issues = IssueCache(
                self.forge,
                self.state_dir / "upstream-issues.sqlite",
                self.policy.upstream.forge or self.policy.upstream.git,
            )
        return self._issues

    @property
    def issue_warnings(self) -> list[str]:
        return list(self._issues.warnings) if self._issues is not None else []

    @property
    def issue_searches(self) -> int | None:
        """How many issue searches this run asked the forge (None without issue rules)."""
        return self._issues.asked if self._issues is not None else None

    def advisories(self) -> dict[str, AdvisoryIndex]:
        """The advisory databases the flag rules name, read (and fetched) once per run."""
        if self._advisories is None:
            self._advisories = {
                r.name: load_advisories(r.advisories, r.advisory_repo, self.state_dir)
                for r in self.policy.flags
                if r.advisories is not None
            }
        return self._advisories
