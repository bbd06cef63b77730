"""One contract, two forges: everything the controller relies on behaves the same on the
embedded SQLite forge and on GitHub (over real HTTP to the test server)."""

from __future__ import annotations

import datetime as dt

import pygit2
import pytest

from stablectl.forge.base import (
    CIRequest,
    ConflictError,
    Forge,
    ForgeError,
    HeadMovedError,
    Marker,
    NotFoundError,
)
from stablectl.policy import LOCAL_CI_IDENTITY
from tests.forges import BOT, CI, MAINTAINER, READER, SLUG, Harness

STABLE = "3.11.2-stable"
HEAD_A, HEAD_B = "stablectl/3.11.2/aaa", "stablectl/3.11.2/bbb"


def marker(original: str = "a" * 40) -> Marker:
    return Marker(
        "backport", "3.11.2", original=original, source=original, extra={"rule": "security-news"}
    )


def body(original: str = "a" * 40) -> str:
    return "Backport of a fix.\n\n" + marker(original).render()


def test_forge_satisfies_protocol(harness: Harness) -> None:
    assert isinstance(harness.forge, Forge)
    assert harness.forge.kind == harness.kind


def test_open_list_and_marker(harness: Harness) -> None:
    f = harness.forge
    pr = f.open_pr(
        HEAD_A,
        STABLE,
        "[3.11.2-stable] gh-1: fix aaa (GH-2)",
        body(),
        labels=["backport", "security"],
    )
    assert pr.state == "open" and not pr.draft
    assert pr.head == HEAD_A and pr.base == STABLE
    assert pr.head_sha == harness.fork.shas["aaa"]
    assert pr.labels == ("backport", "security")
    assert pr.marker == marker()
    # A PR a person opened (no marker) is not stablectl's.
    harness.raw_pr(HEAD_B, STABLE, "manual backport", "by hand")
    listed = f.list_prs()
    assert [p.number for p in listed] == [pr.number]
    assert listed[0].marker == marker() and listed[0].labels == ("backport", "security")


def test_open_is_idempotent(harness: Harness) -> None:
    f = harness.forge
    first = f.open_pr(HEAD_A, STABLE, "t", body())
    again = f.open_pr(HEAD_A, STABLE, "t", body())
    assert again.number == first.number
    assert len(f.list_prs(state="all")) == 1


def test_draft_pr(harness: Harness) -> None:
    pr = harness.forge.open_pr(HEAD_A, STABLE, "conflict", body(), draft=True, labels=["conflicts"])
    assert pr.draft
    assert harness.forge.get_pr(pr.number).draft


def test_open_on_missing_branch_names_it(harness: Harness) -> None:
    with pytest.raises(NotFoundError, match=r"stablectl/3\.11\.2/nope"):
        harness.forge.open_pr("stablectl/3.11.2/nope", STABLE, "t", body())


def test_unknown_pr(harness: Harness) -> None:
    with pytest.raises(NotFoundError, match="#999"):
        harness.forge.get_pr(999)


def test_update_close_and_comment(harness: Harness) -> None:
    f = harness.forge
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    pr = f.open_pr(HEAD_A, STABLE, "old", body())
    upd = f.update_pr(pr.number, title="new title", body=body("c" * 40))
    assert upd.title == "new title" and upd.marker is not None
    assert upd.marker.original == "c" * 40
    closed = f.close_pr(pr.number, comment="Reverted upstream; closing.")
    assert closed.state == "closed"
    assert f.list_prs() == []
    assert [p.number for p in f.list_prs(state="all")] == [pr.number]
    comments = f.comments_since(since)
    assert [(c.number, c.body) for c in comments] == [(pr.number, "Reverted upstream; closing.")]
    assert f.comments_since(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)) == []


def test_set_labels_replaces(harness: Harness) -> None:
    f = harness.forge
    pr = f.open_pr(HEAD_A, STABLE, "t", body(), labels=["backport", "conflicts"])
    f.set_labels(pr.number, ["backport", "security"])
    assert f.get_pr(pr.number).labels == ("backport", "security")
    f.set_labels(pr.number, [])
    assert f.get_pr(pr.number).labels == ()


def test_head_follows_branch_and_reviews_name_their_commit(harness: Harness) -> None:
    f = harness.forge
    pr = f.open_pr(HEAD_A, STABLE, "t", body())
    harness.review(pr.number, MAINTAINER, "APPROVED")
    new = harness.fork.commit_on(HEAD_A, "a.py", "x = 3\n", "adapt")
    assert f.get_pr(pr.number).head_sha == new
    harness.review(pr.number, MAINTAINER, "CHANGES_REQUESTED")
    reviews = f.reviews(pr.number)
    assert [(r.user, r.state, r.commit) for r in reviews] == [
        (MAINTAINER, "APPROVED", harness.fork.shas["aaa"]),
        (MAINTAINER, "CHANGES_REQUESTED", new),
    ]
    assert reviews[0].submitted_at <= reviews[1].submitted_at


def test_checks_merge_statuses_and_runs(harness: Harness) -> None:
    f = harness.forge
    sha = harness.fork.shas["aaa"]
    assert f.checks(sha) == []
    f.set_status(sha, "stable-tests", "pending", "https://ci.example/1")
    f.set_status(sha, "stable-tests", "success", "https://ci.example/2", "tests passed")
    harness.check_run(sha, "build (ubuntu)", None)
    harness.check_run(sha, "lint", "failure")
    checks = {c.name: c for c in f.checks(sha)}
    assert sorted(checks) == ["build (ubuntu)", "lint", "stable-tests"]
    assert checks["stable-tests"].ok and checks["stable-tests"].url == "https://ci.example/2"
    assert checks["stable-tests"].kind == "status"
    # Every result names who reported it: the status its creator (this client), the check
    # runs the CI's app; one result per name *and* reporter.
    assert checks["stable-tests"].source == BOT
    ci = LOCAL_CI_IDENTITY if harness.kind == "local" else CI
    assert checks["lint"].source == checks["build (ubuntu)"].source == ci
    harness.status(sha, "stable-tests", "failure", by=READER)
    both = sorted((c.source, c.conclusion) for c in f.checks(sha) if c.name == "stable-tests")
    assert both == sorted([(BOT, "success"), (READER, "failure")])
    assert checks["build (ubuntu)"].status == "in_progress" and not checks["build (ubuntu)"].ok
    assert checks["lint"].failed and checks["lint"].kind == "check_run"
    assert f.checks(harness.fork.shas["bbb"]) == []


def test_request_tests_again_leaves_the_head_waiting(harness: Harness) -> None:
    """A retest makes the head's tests pending on both forges; a first request with the
    workflow missing names `stablectl init` on GitHub and is a no-op locally."""
    f = harness.forge
    sha = harness.fork.shas["aaa"]
    pr = f.open_pr(HEAD_A, STABLE, "t", body())
    app = CIRequest("app", "stable-tests.yml", "main", "stable-tests")
    f.request_tests(pr.number, sha, app, again=False)
    assert f.checks(sha) == []  # a push starts the runs by itself
    f.request_tests(pr.number, sha, app, again=True)
    waiting = f.checks(sha)
    assert waiting and all(c.status != "completed" for c in waiting)
    dispatch = CIRequest("dispatch", "stable-tests.yml", "main", "stable-tests")
    if harness.kind == "github":
        with pytest.raises(ForgeError, match="stablectl init"):
            f.request_tests(pr.number, sha, dispatch, again=False)
    else:
        f.request_tests(pr.number, sha, dispatch, again=False)


def test_web_url(harness: Harness) -> None:
    """The fork's web pages: the test server is a GitHub Enterprise host (`/api/v3`), whose
    pages live on the host itself."""
    url = harness.forge.web_url()
    if harness.kind == "github":
        assert url is not None and url.endswith(f"/{SLUG}") and "/api/" not in url
    else:
        assert url is None


def test_merge_guards_head_and_moves_base_forward(harness: Harness) -> None:
    f, fork = harness.forge, harness.fork
    pr = f.open_pr(HEAD_A, STABLE, "t", body())
    before = fork.tip(STABLE)
    with pytest.raises(HeadMovedError, match="not merging"):
        f.merge(pr.number, fork.shas["bbb"], "rebase")
    assert fork.tip(STABLE) == before
    new = f.merge(pr.number, fork.shas["aaa"], "rebase")
    repo = pygit2.Repository(str(fork.bare))
    assert fork.tip(STABLE) == new
    assert repo.descendant_of(pygit2.Oid(hex=new), pygit2.Oid(hex=before))
    msg = repo[pygit2.Oid(hex=new)].peel(pygit2.Commit).message
    assert "(cherry picked from commit " in msg
    merged = f.get_pr(pr.number)
    assert merged.state == "merged" and merged.merge_sha == new
    with pytest.raises(ConflictError, match="already merged"):
        f.merge(pr.number, fork.shas["aaa"], "rebase")


def test_rebase_merge_onto_moved_base(harness: Harness) -> None:
    f, fork = harness.forge, harness.fork
    a = f.open_pr(HEAD_A, STABLE, "a", body("a" * 40))
    b = f.open_pr(HEAD_B, STABLE, "b", body("b" * 40))
    f.merge(a.number, fork.shas["aaa"], "rebase")
    with pytest.raises(ConflictError, match="fast-forward"):
        f.merge(b.number, fork.shas["bbb"], "fast-forward")
    tip = f.merge(b.number, fork.shas["bbb"], "rebase")
    tree = pygit2.Repository(str(fork.bare))[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree
    assert tree["Lib/a.py"].data == b"x = 2\n" and tree["Lib/b.py"].data == b"y = 2\n"


def test_fast_forward_merge(harness: Harness) -> None:
    f, fork = harness.forge, harness.fork
    pr = f.open_pr(HEAD_A, STABLE, "t", body())
    assert f.merge(pr.number, fork.shas["aaa"], "fast-forward") == fork.shas["aaa"]
    assert fork.tip(STABLE) == fork.shas["aaa"]
    assert f.get_pr(pr.number).state == "merged"


def test_release_and_assets_are_idempotent(harness: Harness) -> None:
    f = harness.forge
    assert f.get_release("v3.11.2.1") is None
    rel = f.create_release("v3.11.2.1", "Python 3.11.2.1", "notes")
    assert (rel.tag, rel.name, rel.body, rel.draft) == (
        "v3.11.2.1",
        "Python 3.11.2.1",
        "notes",
        False,
    )
    assert f.create_release("v3.11.2.1", "other", "other").id == rel.id
    data = b"\xfd7zXZ tarball bytes"
    a = f.upload_asset(rel, "Python-3.11.2.1.tar.xz", data, "application/x-xz")
    assert (a.name, a.size) == ("Python-3.11.2.1.tar.xz", len(data))
    rel2 = f.get_release("v3.11.2.1")
    assert rel2 is not None and [x.name for x in rel2.assets] == ["Python-3.11.2.1.tar.xz"]
    assert f.upload_asset(rel2, "Python-3.11.2.1.tar.xz", data, "application/x-xz").size == len(
        data
    )
    with pytest.raises(ConflictError, match=r"Python-3\.11\.2\.1\.tar\.xz"):
        f.upload_asset(rel2, "Python-3.11.2.1.tar.xz", data + b"!", "application/x-xz")


def test_upstream_pr_labels(harness: Harness) -> None:
    sha = harness.fork.shas["aaa"]
    harness.upstream_pr(4242, ["type-security", "needs backport to 3.11"], [sha])
    assert harness.forge.upstream_pr_labels(sha) == ["needs backport to 3.11", "type-security"]
    assert harness.forge.upstream_pr_labels(harness.fork.shas["bbb"]) == []


def test_stats_count_writes(harness: Harness) -> None:
    f = harness.forge
    pr = f.open_pr(HEAD_A, STABLE, "t", body())
    f.comment(pr.number, "hello")
    f.list_prs()
    f.get_pr(pr.number)
    assert f.stats.writes == 2
    assert f.stats.ops["list_prs"] == 1 and f.stats.ops["get_pr"] == 1


def test_upstream_issues_by_title_words_and_labels(harness: Harness) -> None:
    """Issue search (issue flag rules): title words with in:title, label qualifiers; PRs of
    the same numbers space are not issues."""
    harness.upstream_issue(
        128840,
        "[CVE-2025-0938] urlparse does not flag hostname *containing* [ or ] as incorrect",
        ["type-security", "stdlib"],
    )
    harness.upstream_issue(103848, "urlparse accepts bracketed hosts that are not IPv6", [])
    harness.upstream_issue(105704, "Disallow [ and ] in domain names", ["type-bug"])
    harness.upstream_pr(4242, ["type-security"], [harness.fork.shas["aaa"]])
    got = harness.forge.upstream_issues("CVE in:title")
    assert [(i.number, i.labels, i.state) for i in got] == [
        (128840, ("stdlib", "type-security"), "closed" if harness.kind == "github" else "open")
    ]
    assert got[0].title.startswith("[CVE-2025-0938] urlparse")
    assert [i.number for i in harness.forge.upstream_issues('label:"type-security"')] == [128840]
    assert [i.number for i in harness.forge.upstream_issues("urlparse in:title")] == [
        103848,
        128840,
    ]
    assert harness.forge.upstream_issues("nothing-like-this in:title") == []


def test_labeled_upstream_prs(harness: Harness) -> None:
    sha = harness.fork.shas["aaa"]
    harness.upstream_pr(4242, ["type-security", "needs backport to 3.11"], [sha])
    harness.upstream_pr(4243, ["type-bug"], [harness.fork.shas["bbb"]])
    assert harness.forge.labeled_prs("type-security") == {4242}
    assert harness.forge.labeled_prs("needs backport to 3.11") == {4242}
    assert harness.forge.labeled_prs("nothing") == set()
