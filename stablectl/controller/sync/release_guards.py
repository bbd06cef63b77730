"""What must hold before a release moves (a mixin of `ReleaseRound`): a release commit is
tagged only when it came through its release PR (`verify.tags.release_pr_problems`), verify
would accept the branch under it, a version is never reused, and a tag found on the fork is
built from only when it is this mirror's or signed by a pinned key."""

from __future__ import annotations

import pygit2

from stablectl.controller import release_history as rel
from stablectl.controller.identities import stablectl_prs
from stablectl.controller.plan import SeriesPlan
from stablectl.controller.provenance_gates import release_audit
from stablectl.controller.release_key import policy_trust
from stablectl.controller.verify.tags import release_pr_problems
from stablectl.controller.workspace import Workspace
from stablectl.errors import GitError
from stablectl.forge.base import Forge
from stablectl.gitops.cache import SIGNED_TAGS
from stablectl.gitops.signing import check_signed_tag
from stablectl.policy import Policy, Series


class ReleaseGuards:
    ws: Workspace
    policy: Policy
    forge: Forge

    def _expected_release(self, sp: SeriesPlan, tip: str) -> str | None:
        """The release commit stablectl would propose on `tip` now (None: nothing to
        release)."""
        sr = rel.scan_series(self.ws.cache.repo, sp, tip)
        if not sr.unreleased:
            return None
        version = rel.version_of(self.policy, sp.series, sr.next_n)
        return rel.release_commit(
            self.ws.cache.repo,
            self.policy,
            sp.series,
            tip=tip,
            version=version,
            fixes=sr.unreleased,
        )

    def _unreleased(
        self, sr: rel.SeriesReleases, s: Series, commits: list[str]
    ) -> list[tuple[str, str]]:
        """Of `commits`, those after the last release, with their subjects."""
        repo = self.ws.cache.repo
        last = sr.releases[-1].commit if sr.releases else None
        out = []
        for sha in commits:
            oid = pygit2.Oid(hex=sha)
            if last is not None and (sha == last or repo.descendant_of(pygit2.Oid(hex=last), oid)):
                continue
            msg = repo[oid].peel(pygit2.Commit).message
            out.append((sha, msg.splitlines()[0] if msg else ""))
        return out

    def _through_release_pr(self, s: Series, rc: rel.ReleaseCommit, n: int) -> None:
        """Only the pipeline signs: a release commit is tagged when it is numbered next and is
        the head of the release PR stablectl opened, merged, approved by enough maintainers,
        with the required checks green on it. Anything else on the branch that claims to be a
        release (a pushed `Stablectl-Release:` commit) holds the series, named."""
        version = rel.version_of(self.policy, s, n)
        problems = []
        if rc.version != version:
            problems.append(
                f"release commit {rc.commit[:10]} names version {rc.version}, release number "
                f"{n} is {version}"
            )
        problems += release_pr_problems(self.policy, self.forge, s, rc.version, rc.commit)
        if problems:
            raise GitError(
                f"release held: {rel.tag_of(self.policy, s, n)} is not signed: "
                + "; ".join(problems)
            )

    def _existing_tag(self, s: Series, tag: str, rc: rel.ReleaseCommit, n: int) -> None:
        """Publish from a tag found on the fork only when sync would have made it: the release
        commit came through its release PR, verify would accept the branch, and the tag is
        this mirror's (its record in the cache) or signed by a pinned key."""
        self._through_release_pr(s, rc, n)
        self._verifiable(s)
        cache = self.ws.cache
        obj = cache.resolve(f"refs/fork-tags/{tag}")
        if obj is not None and obj == cache.resolve(f"{SIGNED_TAGS}{tag}"):
            return
        trust = policy_trust(self.policy)
        try:
            if not trust.pinned:
                raise GitError("no key is pinned to check its signature")
            check_signed_tag(cache.path, tag, trust, ref=f"refs/fork-tags/{tag}")
        except GitError as e:
            raise GitError(
                f"release held: tag {tag} on the fork was not made by this mirror ({e}): "
                "nothing is built or signed from it (delete the tag if it is not the "
                "release's; sync tags the release itself)"
            ) from None

    def _verifiable(self, s: Series) -> list[str]:
        """Hold the release while `verify` would reject the branch under it; returns the
        commits on it that did not come through a merged stablectl PR."""
        blockers, direct = release_audit(self.ws, self.policy, s, self.forge)
        if blockers:
            raise GitError(
                f"release held: stablectl verify would reject {s.stable_branch}: "
                + "; ".join(blockers)
            )
        return direct

    def _never_reused(self, tag: str, commit: str | None) -> None:
        """A version is published once: a forge release of `tag` that the fork has no tag for
        means the fork was rewound (or the tag deleted) after publishing. Proposing or tagging
        that version again, with other content, would give downstreams two different
        3.11.2.N; stop and say so."""
        cache = self.ws.cache
        if cache.resolve(f"refs/fork-tags/{tag}") is not None:
            return
        published = self.forge.get_release(tag)
        if published is None:
            self._never_signed(tag, commit)
            return
        raise GitError(
            f"{tag} was published (forge release {published.name!r}) but the fork has no such "
            "tag: the fork was rewound or the tag deleted. A version is never reused; restore "
            f"the tag and the branch from the published release (its manifest names the commit)"
            + (f", not {commit[:10]}" if commit else "")
        )

    def _never_signed(self, tag: str, commit: str | None) -> None:
        """With the forge release gone too: this cache's record of the tags it signed, and the
        forge's merged release PRs (which cannot be deleted), still know the version."""
        cache = self.ws.cache
        signed = cache.resolve(f"{SIGNED_TAGS}{tag}")
        if signed is not None:
            raise GitError(
                f"{tag} was signed by this mirror (tag object {signed}) but the fork has no such "
                "tag: the fork was rewound or the tag deleted. A version is never reused; "
                f"restore the tag (`git push <fork> {signed}:refs/tags/{tag}`) and its branch"
            )
        for pr in stablectl_prs(self.policy, self.forge, "all"):
            m = pr.marker
            if (
                pr.state == "merged"
                and m is not None
                and m.kind == "release"
                and m.extra.get("tag") == tag
                and pr.head_sha != commit
            ):
                raise GitError(
                    f"{tag} ({m.extra.get('version', tag)}) was released through release "
                    f"PR #{pr.number}, merged at {pr.head_sha[:10]}, but the fork has no such tag: "
                    "the fork was rewound or the tag deleted. A version is never reused; restore "
                    f"the branch and the tag at {pr.head_sha[:10]}"
                )
