from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablectl.gitops.messages import (
    backport_title,
    cherry_pick_message,
    parse_message,
    parse_trailers,
)

SHA = "a" * 40
SHA2 = "b" * 40


def test_miss_islington_backport() -> None:
    msg = (
        "[3.11] gh-102153: Start stripping C0 control and space chars in `urlsplit` (GH-102508)\n"
        "\n"
        "`urllib.parse.urlsplit` has already been respecting the WHATWG spec a bit.\n"
        "This addresses CVE-2023-24329.\n"
        "\n"
        f"(cherry picked from commit {SHA})\n"
        "\n"
        "Co-authored-by: Illia Volochii <illia.volochii@gmail.com>\n"
        "Co-authored-by: Gregory P. Smith [Google] <greg@krypto.org>\n"
    )
    info = parse_message(msg)
    assert info.branch_prefix == "3.11"
    assert info.issues == ("gh-102153",)
    assert info.pr == 102508
    assert info.cherry_picked_from == (SHA,)
    assert info.cves == ("CVE-2023-24329",)
    assert info.trailers == (
        ("Co-authored-by", "Illia Volochii <illia.volochii@gmail.com>"),
        ("Co-authored-by", "Gregory P. Smith [Google] <greg@krypto.org>"),
    )


def test_original_with_hash_pr_and_bpo() -> None:
    info = parse_message("bpo-43882: Remove tab and newline chars from URLs (#25595)\n")
    assert info.issues == ("bpo-43882",)
    assert info.pr == 25595
    assert info.branch_prefix is None
    assert info.cherry_picked_from == ()


def test_several_trailers_stable_to_stable() -> None:
    msg = f"test: mask a generator\n\nBody.\n\n(cherry picked from commit {SHA})\n" + (
        f"(cherry picked from commit {SHA2})\n"
    )
    assert parse_message(msg).cherry_picked_from == (SHA, SHA2)


def test_revert() -> None:
    info = parse_message(f'Revert "gh-1: Foo (#2)"\n\nThis reverts commit {SHA}.\n')
    assert info.reverts == (SHA,)


def test_subject_is_never_a_trailer() -> None:
    assert parse_trailers("Fixes: something\n") == []


def test_backport_title() -> None:
    t = backport_title("3.11.2-stable", "gh-100: Fix the thing (#101)\n\nbody")
    assert t == "[3.11.2-stable] gh-100: Fix the thing (GH-101)"
    t = backport_title("3.11.2-stable", "[3.11] gh-100: Fix the thing (GH-101)\n")
    assert t == "[3.11.2-stable] gh-100: Fix the thing (GH-101)"


@given(
    st.sampled_from(["gh", "GH", "bpo"]),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40),
    st.sampled_from(["3.11", "3.12", "3.9"]),
)
def test_subject_roundtrip(kind: str, issue: int, pr: int, text: str, branch: str) -> None:
    text = text.replace("(", "").replace(")", "").replace("[", "").replace("]", "")
    subject = f"[{branch}] {kind}-{issue}: {text} (GH-{pr})"
    info = parse_message(subject + "\n")
    assert info.branch_prefix == branch
    assert info.pr == pr
    if issue != pr:
        assert info.issues[0] == f"{kind.lower()}-{issue}"


@given(st.text(max_size=200))
def test_parse_never_raises(text: str) -> None:
    info = parse_message(text)
    assert isinstance(info.subject, str)
    for sha in info.cherry_picked_from:
        assert 7 <= len(sha) <= 40


# ----------------------------------------------------------------- agreement with git itself

_LINES = st.sampled_from(
    [
        "Fix the parser.",
        "More text here, explaining why.",
        "Co-authored-by: A <a@example.org>",
        "Signed-off-by: B <b@example.org>",
        f"(cherry picked from commit {SHA2})",
        "Fixes: #123",
        "  continued trailer line",
        "Not: a trailer because of spaces before",
        "key with space: value",
        "",
    ]
)


@pytest.fixture(scope="module")
def gitrepo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("git")
    env = ["-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(d)], check=True)
    (d / "f").write_text("0\n")
    subprocess.run(["git", "-C", str(d), *env, "add", "f"], check=True)
    subprocess.run(["git", "-C", str(d), *env, "commit", "-qm", "base"], check=True)
    return d


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_LINES, min_size=0, max_size=6))
def test_cherry_pick_message_matches_git(gitrepo: Path, body: list[str]) -> None:
    """Our trailer placement equals what `git cherry-pick -x` writes."""
    message = "Subject line\n\n" + "\n".join(body)
    g = ["git", "-C", str(gitrepo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*g, "checkout", "-q", "-B", "side", "main"], check=True)
    (gitrepo / "f").write_text(f"{len(body)} {hash(message)}\n")
    subprocess.run([*g, "commit", "-qam", message, "--cleanup=verbatim"], check=True)
    sha = subprocess.run([*g, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    raw = subprocess.run(
        [*g, "log", "-1", "--format=%B", sha], capture_output=True, text=True
    ).stdout
    subprocess.run([*g, "checkout", "-q", "-B", "pick", "main"], check=True)
    subprocess.run([*g, "cherry-pick", "-x", "--allow-empty", sha], check=True, capture_output=True)
    got = subprocess.run(
        [*g, "log", "-1", "--format=%B", "HEAD"], capture_output=True, text=True
    ).stdout
    # %B adds one trailing newline to what the commit stores.
    assert cherry_pick_message(raw[:-1], sha) == got[:-1]
