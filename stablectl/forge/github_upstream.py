"""What upstream's GitHub says about its own PRs and issues, for the label and issue flag rules:
the labels of the PRs that produced a commit, the PRs carrying a label, the issues a search
finds. Read anonymously-capable endpoints of the upstream repository (not the fork)."""

from __future__ import annotations

import github3.exceptions as gh_exc
import requests

from stablectl.forge.base import ForgeStats, UpstreamIssue
from stablectl.forge.github_rest import operation, pages


class GitHubUpstream:
    """The upstream repository `slug` on the GitHub API at `api_url` (None: no upstream forge,
    every answer empty)."""

    def __init__(
        self, session: requests.Session, stats: ForgeStats, api_url: str, slug: str | None
    ) -> None:
        self.session, self.stats, self.api_url, self.slug = session, stats, api_url, slug

    def pr_labels(self, sha: str) -> list[str]:
        """The labels of every upstream PR that produced commit `sha`."""
        if not self.slug:
            return []
        url = f"{self.api_url}/repos/{self.slug}/commits/{sha}/pulls"
        with operation(self.stats, "upstream_pr_labels", f"PRs of {sha[:12]} on {self.slug}"):
            try:
                prs = list(pages(self.session, url))
            except (gh_exc.NotFoundError, gh_exc.UnprocessableEntity):
                return []  # the commit is not on the upstream forge
            return sorted({lb["name"] for p in prs for lb in p.get("labels") or []})

    def labeled_prs(self, label: str) -> set[int]:
        """Upstream's PRs carrying `label`, by one search."""
        if not self.slug:
            return set()
        query = f'repo:{self.slug} is:pr label:"{label}"'
        what = f"PRs labelled {label!r} on {self.slug}"
        with operation(self.stats, "labeled_prs", what):
            items = pages(self.session, f"{self.api_url}/search/issues", {"q": query}, "items")
            return {int(i["number"]) for i in items}

    def issues(self, terms: str) -> list[UpstreamIssue]:
        """One paginated issue search (GitHub answers at most 1,000 results a search)."""
        if not self.slug:
            return []
        query = f"repo:{self.slug} is:issue {terms}"
        what = f"issues matching {terms!r} on {self.slug}"
        with operation(self.stats, "upstream_issues", what):
            items = pages(self.session, f"{self.api_url}/search/issues", {"q": query}, "items")
            return [
                UpstreamIssue(
                    int(i["number"]),
                    str(i.get("title") or ""),
                    tuple(sorted(lb["name"] for lb in i.get("labels") or [])),
                    str(i.get("state") or "open"),
                )
                for i in items
                if "pull_request" not in i
            ]
