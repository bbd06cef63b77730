"""GitHub-only behaviour: retries, rate limits, conditional requests, errors, secrets, costs.
Real HTTP to the test server on 127.0.0.1; its answers are checked against GitHub's schema."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from stablectl.forge.base import (
    AuthError,
    ForgeError,
    ForgeUnavailableError,
    Marker,
    NotFoundError,
    RateLimitError,
)
from stablectl.forge.github import GitHubForge
from tests.forges import READER, SLUG, TOKENS, GitHubHarness
from tests.ghserver.server import PR, FakeGitHub

STABLE = "3.11.2-stable"
HEAD_A = "stablectl/3.11.2/aaa"
BODY = "x\n" + Marker("backport", "3.11.2", "a" * 40, "a" * 40).render()


@pytest.fixture
def gh(tmp_path: Path, fake_github: FakeGitHub) -> GitHubHarness:
    return GitHubHarness(tmp_path, fake_github)


def requests_to(fake: FakeGitHub, pattern: str) -> list[int]:
    return [status for _, path, status in fake.log if re.search(pattern, path)]


def test_502_burst_is_retried_with_backoff(gh: GitHubHarness) -> None:
    gh.fake.fail(3, 502)
    pr = gh.forge.open_pr(HEAD_A, STABLE, "t", BODY)
    assert pr.number == 1
    assert gh.forge.stats.retries == 3
    assert len(gh.sleeps) == 3 and all(0 < s <= 0.05 for s in gh.sleeps)
    assert len(gh.forge.list_prs()) == 1  # the retried POST made one PR, not several


def test_persistent_5xx_stops_cleanly(gh: GitHubHarness) -> None:
    gh.fake.fail(100, 503)
    with pytest.raises(ForgeUnavailableError, match=r"PRs of acme/cpython.*503") as e:
        gh.forge.list_prs()
    assert e.value.exit_code == 1
    assert gh.forge.stats.retries == 5  # six attempts in all, then it stops


def test_dropped_connection_is_retried(gh: GitHubHarness) -> None:
    gh.fake.drop(2)
    assert gh.forge.get_release("v3.11.2.1") is None
    assert gh.forge.stats.retries == 2


def test_dropped_connections_forever_stop_with_message(gh: GitHubHarness) -> None:
    gh.fake.drop(100)
    with pytest.raises(ForgeUnavailableError, match="unreachable after 6 attempts"):
        gh.forge.list_prs()


def test_a_failing_page_of_a_list_is_retried(gh: GitHubHarness) -> None:
    st = gh.repo
    base = gh.fork.shas["base"]
    for n in range(1, 251):
        st.prs[n] = PR(
            n,
            f"pr {n}",
            BODY if n % 2 else "no marker",
            f"b{n}",
            STABLE,
            gh.fork.shas["aaa"],
            base,
            "stablectl-bot",
            False,
        )
    gh.fake.fail(1, 502, path=r"/pulls$")  # the first attempt at page 1
    prs = gh.forge.list_prs()
    assert len(prs) == 125
    assert requests_to(gh.fake, r"/pulls$") == [200, 200, 200]  # 3 pages of 100
    assert gh.forge.stats.retries == 1
    assert gh.forge.stats.requests["list_prs"] == 4


@pytest.mark.parametrize("kind", ["primary", "secondary", "429"])
def test_rate_limit_window_is_waited_out(gh: GitHubHarness, kind: str) -> None:
    gh.fake.rate_limit(1.0, kind)
    assert gh.forge.get_release("v3.11.2.1") is None
    assert gh.forge.stats.retries >= 1
    waited = [s for s in gh.sleeps if s >= 0.5]
    assert waited, gh.sleeps
    # It waits what GitHub says: Retry-After, or until X-RateLimit-Reset (+1 s of skew).
    assert all(s <= 3.0 for s in waited)


def test_rate_limit_longer_than_policy_allows_stops_at_once(gh: GitHubHarness) -> None:
    gh.fake.rate_limit(3600, "primary")
    forge = gh.make_forge(max_rate_limit_wait=60)
    with pytest.raises(RateLimitError, match=r"resets at .* UTC.*max_rate_limit_wait \(60 s"):
        forge.list_prs()
    assert gh.sleeps == []
    gh.fake.rate_limit(0)


def test_validation_errors_are_not_retried(gh: GitHubHarness) -> None:
    with pytest.raises(ForgeError, match="422"):
        gh.forge.set_status("0" * 40, "ci", "success")
    assert requests_to(gh.fake, "/statuses/") == [422]
    assert gh.forge.stats.retries == 0


def test_bad_token_is_a_clear_error_and_never_printed(
    gh: GitHubHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "ghp_CANARY_9f8e7d6c5b4a"
    forge = gh.make_forge(token=canary)
    with pytest.raises(AuthError, match="rejected the token") as e:
        forge.list_prs()
    assert canary in gh.fake.received_auth  # it was sent, as a header...
    assert len(gh.fake.log) == 1  # ...once: no retry on 401
    text = str(e.value) + repr(e.value) + caplog.text + repr(forge.stats.as_dict())
    assert canary not in text
    etags = (gh.fork.bare.parent / "state" / "github-etags.sqlite").read_bytes()
    assert canary.encode() not in etags


def test_missing_permission_is_not_retried(gh: GitHubHarness) -> None:
    forge = gh.make_forge(token=TOKENS[READER])
    with pytest.raises(AuthError, match=r"forbidden.*lacks a permission"):
        forge.open_pr(HEAD_A, STABLE, "t", BODY)
    assert requests_to(gh.fake, "/pulls") == [403]


def test_unknown_repository(gh: GitHubHarness) -> None:
    forge = gh.make_forge(fork="acme/nothing")
    with pytest.raises(NotFoundError, match="acme/nothing"):
        forge.list_prs()


def test_no_token_is_a_clear_error(gh: GitHubHarness) -> None:
    with pytest.raises(AuthError, match=r"set \$STABLE_TOKEN"):
        GitHubForge(
            api_url=gh.fake.base, fork=SLUG, upstream=None, token=None, token_env="STABLE_TOKEN"
        )


def test_redaction_if_github_echoes_the_token(gh: GitHubHarness) -> None:
    token = TOKENS["stablectl-bot"]
    st = gh.repo
    st.prs[7] = PR(7, "x", BODY, f"token-{token}", STABLE, "0" * 40, "0" * 40, "x", False)
    with pytest.raises(ForgeError) as e:
        gh.forge.open_pr(f"token-{token}", STABLE, "t", BODY)
    assert token not in str(e.value) and "***" in str(e.value)


def test_conditional_requests_save_quota(gh: GitHubHarness) -> None:
    gh.forge.open_pr(HEAD_A, STABLE, "t", BODY)
    gh.forge.list_prs()
    quota = gh.fake.quota
    gh.forge.list_prs()
    assert gh.forge.stats.not_modified == 1
    assert gh.fake.quota == quota  # a 304 costs nothing
    # The cache survives the run (state directory): a new forge object revalidates too.
    again = gh.make_forge()
    assert [p.number for p in again.list_prs()] == [1]
    assert again.stats.not_modified == 1
    # A change upstream is seen at once (ETags revalidate; nothing is served stale).
    gh.forge.set_labels(1, ["security"])
    assert again.list_prs()[0].labels == ("security",)


@pytest.mark.off_schema
def test_an_off_schema_answer_fails_the_test(gh: GitHubHarness) -> None:
    gh.fake.off_schema(1, path=r"/pulls/\d+$")
    gh.forge.open_pr(HEAD_A, STABLE, "t", BODY)
    with pytest.raises(ForgeError):
        gh.forge.get_pr(1)  # github3.py cannot use it either
    assert gh.fake.schema_errors
    assert "'url' is a required property" in gh.fake.schema_errors[0]


def test_enterprise_and_dotcom_url_shapes(tmp_path: Path, github_spec: object) -> None:
    from tests.ghserver.openapi import Spec

    assert isinstance(github_spec, Spec)
    for prefix in ("/api/v3", ""):
        fake = FakeGitHub(github_spec, prefix=prefix)
        fake.start()
        try:
            h = GitHubHarness(tmp_path / (prefix.strip("/").replace("/", "-") or "root"), fake)
            pr = h.forge.open_pr(HEAD_A, STABLE, "t", BODY)
            rel = h.forge.create_release("v3.11.2.1", "r", "b")
            h.forge.upload_asset(rel, "a.txt", b"abc", "text/plain")
            assert pr.number == 1 and not fake.schema_errors
            assert all(p.startswith("/repos/") for _, p, _ in fake.log)
        finally:
            fake.stop()


# Documented costs: API requests per operation (docs/forge.md), measured here.
COSTS = {
    "list_prs": 1,
    "get_pr": 1,
    "open_pr": 1,
    "open_pr+labels": 2,
    "update_pr": 1,
    "close_pr": 1,
    "close_pr+comment": 2,
    "set_labels": 1,
    "comment": 1,
    "comments_since": 1,
    "reviews": 1,
    "checks": 2,
    "set_status": 1,
    "merge": 2,
    "get_release": 1,
    "create_release": 2,
    "upload_asset": 1,
    "upstream_pr_labels": 1,
}


def measure_costs(gh: GitHubHarness) -> dict[str, int]:
    f = gh.gh
    out: dict[str, int] = {}

    def cost(name: str, fn: object) -> None:
        before = sum(f.stats.requests.values())
        assert callable(fn)
        fn()
        out[name] = sum(f.stats.requests.values()) - before

    sha = gh.fork.shas["aaa"]
    cost("open_pr+labels", lambda: f.open_pr(HEAD_A, STABLE, "t", BODY, labels=["backport"]))
    cost("open_pr", lambda: f.open_pr("stablectl/3.11.2/bbb", STABLE, "t", BODY))
    cost("list_prs", f.list_prs)
    cost("get_pr", lambda: f.get_pr(1))
    cost("update_pr", lambda: f.update_pr(1, title="u"))
    cost("set_labels", lambda: f.set_labels(1, ["x"]))
    cost("comment", lambda: f.comment(1, "c"))
    cost("comments_since", lambda: f.comments_since(time_ago()))
    cost("reviews", lambda: f.reviews(1))
    cost("set_status", lambda: f.set_status(sha, "ci", "success"))
    cost("checks", lambda: f.checks(sha))
    cost("merge", lambda: f.merge(1, sha, "rebase"))
    cost("close_pr", lambda: f.close_pr(2))
    cost("close_pr+comment", lambda: f.close_pr(2, comment="bye"))
    cost("get_release", lambda: f.get_release("v3.11.2.1"))
    cost("create_release", lambda: f.create_release("v3.11.2.1", "n", "b"))
    rel = f.get_release("v3.11.2.1")
    assert rel is not None
    cost("upload_asset", lambda: f.upload_asset(rel, "x.tar.xz", b"x", "application/x-xz"))
    cost("upstream_pr_labels", lambda: f.upstream_pr_labels(sha))
    return out


def time_ago():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


def test_api_costs_match_the_documentation(gh: GitHubHarness) -> None:
    measured = measure_costs(gh)
    assert measured == COSTS
    doc = (Path(__file__).parents[2] / "docs" / "forge.md").read_text()
    for name, n in COSTS.items():
        assert re.search(rf"\| `{re.escape(name)}` \|[^|\n]*\| {n} \|", doc), name


def test_waits_are_counted(gh: GitHubHarness) -> None:
    gh.fake.fail(2, 500)
    gh.forge.list_prs()
    assert gh.forge.stats.retries == 2
    assert gh.forge.stats.waited_seconds == pytest.approx(sum(gh.sleeps))


def _gh_policy(tmp_path: Path, gh: GitHubHarness, fork: str = SLUG) -> Path:
    p = tmp_path / "gh-policy.yaml"
    p.write_text(
        f"""\
project: gh
upstream: {{git: {gh.fork.bare}, forge: python/cpython}}
fork: {{git: {gh.fork.bare}, forge: {fork}}}
forge: {{kind: github, api_url: "{gh.fake.base}", token_env: STABLE_TEST_TOKEN}}
series:
  - {{name: "3.11.2", base: v3.11.2, sources: [main]}}
flags:
  - {{name: security-news, paths: ["Misc/NEWS.d/next/Security/*.rst"]}}
maintainers: [alice]
identities: {{controller: stablectl-bot}}
"""
    )
    return p


def test_cli_on_github_errors_exit_1_without_the_token(
    tmp_path: Path,
    gh: GitHubHarness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.helpers import run_cli

    state = str(tmp_path / "state")
    canary = "ghp_CANARY_0123456789abcdef"
    monkeypatch.setenv("STABLE_TEST_TOKEN", canary)
    r = run_cli(capsys, "--state-dir", state, "prs", "--policy", str(_gh_policy(tmp_path, gh)))
    assert r.code == 1 and "rejected the token (401" in r.err
    r2 = run_cli(
        capsys, "--debug", "--state-dir", state, "prs", "--policy", str(_gh_policy(tmp_path, gh))
    )
    assert r2.code == 1 and "Traceback" in r2.err
    assert canary not in r.out + r.err + r2.out + r2.err

    monkeypatch.setenv("STABLE_TEST_TOKEN", TOKENS["stablectl-bot"])
    r = run_cli(
        capsys,
        "--state-dir",
        state,
        "prs",
        "--policy",
        str(_gh_policy(tmp_path, gh, fork="acme/gone")),
    )
    assert r.code == 1 and "acme/gone" in r.err and "404" in r.err

    gh.forge.open_pr(HEAD_A, STABLE, "[3.11.2-stable] gh-1: fix", BODY)
    gh.review(1, "alice", "APPROVED")
    r = run_cli(
        capsys, "--state-dir", state, "prs", "--policy", str(_gh_policy(tmp_path, gh)), "--json"
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["forge"] == "github" and data["prs"][0]["approvals"] == "1/1"
    assert data["api"]["api_requests"] == 4  # list, statuses, check runs, reviews
    monkeypatch.delenv("STABLE_TEST_TOKEN")
    r = run_cli(capsys, "--state-dir", state, "prs", "--policy", str(_gh_policy(tmp_path, gh)))
    assert r.code == 1 and "set $STABLE_TEST_TOKEN" in r.err


def test_issue_searches_are_kept_refreshed_and_survive_an_outage(
    gh: GitHubHarness, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    """Issue rules: one search request per refresh period; after it the search is asked again
    (a retitle shows); when GitHub cannot answer, the kept answer is used with a warning."""
    from stablectl.controller.issue_cache import IssueCache
    from stablectl.policy import IssuesRule

    gh.upstream_issue(7001, "urlparse accepts [brackets]", ["type-bug"])
    now = [1_000_000.0]
    cache = IssueCache(
        gh.forge, tmp_path / "issues.sqlite", "example/cpython", clock=lambda: now[0]
    )
    rule = IssuesRule(search="urlparse in:title", title=r"\bCVE-\d{4}-\d+", refresh_hours=6)
    assert [i.title for i in cache(rule).values()] == ["urlparse accepts [brackets]"]
    searches = len(requests_to(fake_github, r"/search/issues"))
    gh.upstream_issue(7001, "[CVE-2025-0938] urlparse accepts [brackets]", ["type-security"])
    again = IssueCache(gh.forge, cache.path, "example/cpython", clock=lambda: now[0] + 3600)
    assert again(rule)[7001].title == "urlparse accepts [brackets]"  # kept: no request
    assert len(requests_to(fake_github, r"/search/issues")) == searches
    now[0] += 7 * 3600
    later = IssueCache(gh.forge, cache.path, "example/cpython", clock=lambda: now[0])
    assert later(rule)[7001].title.startswith("[CVE-2025-0938]")
    assert rule.matches(later(rule)[7001].title, ()) == "title 'CVE-2025-0938'"
    fake_github.fail(20, 502, path=r"/search/issues")
    now[0] += 7 * 3600
    outage = IssueCache(gh.forge, cache.path, "example/cpython", clock=lambda: now[0])
    assert outage(rule)[7001].title.startswith("[CVE-2025-0938]")
    assert outage.warnings and "using its answer from 7.0 h ago" in outage.warnings[0]
    fresh = IssueCache(gh.forge, tmp_path / "other.sqlite", "example/cpython")
    with pytest.raises(ForgeError):
        fresh(rule)  # nothing kept: the failure is reported, not an empty answer
