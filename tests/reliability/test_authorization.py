"""Only maintainers' reviews count, on both forges: an impostor's approval, a deleted
account's (GitHub shows it as `ghost`, or with no user at all), and the PR author approving
their own PR never open the gate; a maintainer listed in other case still counts (GitHub
logins are case-insensitive); a maintainer's change request blocks whatever others approve.
Comment commands from non-maintainers are refused (`test_sync.py::test_maintainer_commands`)."""

from __future__ import annotations

import contextlib

import pytest

from stablectl.controller.gate import evaluate_gate
from stablectl.forge.base import Marker
from stablectl.policy import Policy
from tests import forges
from tests.forges import BOT, MAINTAINER, READER, Harness
from tests.helpers import minimal_policy


def policy(*maintainers: str) -> Policy:
    return minimal_policy(
        f"maintainers: {list(maintainers)}\napprovals: {{required: 1}}\nchecks: {{required: []}}\n",
        series="3.11.2",
    )


def open_pr(h: Harness) -> int:
    body = "Backport.\n\n" + Marker("backport", "3.11.2", "a" * 40, "a" * 40).render()
    return h.forge.open_pr("stablectl/3.11.2/aaa", "3.11.2-stable", "[3.11.2] fix", body).number


def as_user(h: Harness, monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    """Another account on the forge (the GitHub test server needs a token for it)."""
    if h.kind == "github":
        token = f"ghp_{login}_token_{len(forges.TOKENS):04d}"
        monkeypatch.setitem(forges.TOKENS, login, token)
        h.fake.add_token(token, login)  # type: ignore[attr-defined]


def test_an_impostors_approval_does_not_count(harness: Harness) -> None:
    n = open_pr(harness)
    harness.review(n, READER, "APPROVED")
    g = evaluate_gate(policy(MAINTAINER), harness.forge, harness.forge.get_pr(n))
    assert not g.ok and g.reason.startswith("0/1 maintainer approvals")


def test_a_maintainer_in_other_case_counts(harness: Harness) -> None:
    n = open_pr(harness)
    harness.review(n, MAINTAINER, "APPROVED")
    g = evaluate_gate(policy(MAINTAINER.upper()), harness.forge, harness.forge.get_pr(n))
    assert g.ok and g.approvers == (MAINTAINER,)


def test_a_deleted_accounts_approval_does_not_count(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bob` approved, then deleted his account: GitHub now shows the review by `ghost`."""
    as_user(harness, monkeypatch, "ghost")
    n = open_pr(harness)
    harness.review(n, "ghost", "APPROVED")
    g = evaluate_gate(policy(MAINTAINER, "bob"), harness.forge, harness.forge.get_pr(n))
    assert not g.ok and "0/1" in g.reason


def test_the_authors_own_approval_does_not_count(harness: Harness) -> None:
    """Even when the bot account is (wrongly) listed as a maintainer."""
    n = open_pr(harness)
    pr = harness.forge.get_pr(n)
    assert pr.author == BOT
    with contextlib.suppress(Exception):  # GitHub refuses: "Can not approve your own PR"
        harness.review(n, BOT, "APPROVED")
    g = evaluate_gate(policy(BOT), harness.forge, pr)
    assert not g.ok and "0/1" in g.reason


def test_a_maintainers_change_request_blocks(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user(harness, monkeypatch, "carol")
    n = open_pr(harness)
    harness.review(n, MAINTAINER, "APPROVED")
    harness.review(n, "carol", "CHANGES_REQUESTED")
    g = evaluate_gate(policy(MAINTAINER, "Carol"), harness.forge, harness.forge.get_pr(n))
    assert not g.ok and g.reason == "changes requested by carol"
    # An impostor's change request does not block.
    as_user(harness, monkeypatch, "dave")
    m = open_pr_b(harness)
    harness.review(m, MAINTAINER, "APPROVED")
    harness.review(m, "dave", "CHANGES_REQUESTED")
    assert evaluate_gate(policy(MAINTAINER), harness.forge, harness.forge.get_pr(m)).ok


def open_pr_b(h: Harness) -> int:
    body = "Backport.\n\n" + Marker("backport", "3.11.2", "b" * 40, "b" * 40).render()
    return h.forge.open_pr("stablectl/3.11.2/bbb", "3.11.2-stable", "[3.11.2] fix b", body).number
