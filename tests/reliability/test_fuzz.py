"""Fuzzing the two parsers that read text from strangers: the policy loader (a maintainer's
YAML, often edited by hand) and the comment-command parser (anyone can comment on a PR).
No traceback escapes; every policy error names FILE:LINE:COL and the field."""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablectl.controller.comment_commands import Command, Problem, parse_commands
from stablectl.errors import PolicyError
from stablectl.policy import load_policy_text

GOOD = """\
project: Python
upstream: {git: https://github.com/python/cpython.git, forge: python/cpython}
fork: {git: https://github.com/o/cpython-stable.git, forge: o/cpython-stable}
series:
  - name: "3.11.2"
    base: v3.11.2
    sources: ["3.11", main]
flags:
  - name: security-news
    security: true
    paths: ["Misc/NEWS.d/next/Security/*.rst"]
  - name: issue-cve
    issues: {search: CVE in:title, title: 'CVE-\\d+'}
maintainers: [alice]
"""
LOCATION = re.compile(r"^fuzz\.yaml:\d+:\d+: ")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["v3.11.2", "main", "*", "[", "(?P<", "3.10", "github", "local", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "project",
    "upstream",
    "fork",
    "series",
    "flags",
    "maintainers",
    "release",
    "checks",
    "approvals",
    "forge",
    "ci",
    "labels",
    "nonsense",
]


def _check(text: str) -> None:
    try:
        load_policy_text(text, "fuzz.yaml")
    except PolicyError as e:
        assert e.problems, text
        for p in e.problems:
            assert LOCATION.match(p), (p, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_is_a_policy_error_or_a_policy(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), values)
def test_any_value_in_any_top_level_field_is_named(field: str, value: object) -> None:
    data = yaml.safe_load(GOOD)
    data[field] = value
    _check(yaml.safe_dump(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["name", "paths", "message", "trailers", "issues", "commits", "advisories"]),
    values,
)
def test_any_value_in_a_flag_rule_is_named(field: str, value: object) -> None:
    data = yaml.safe_load(GOOD)
    data["flags"][1][field] = value
    _check(yaml.safe_dump(data))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_noise_anywhere_in_a_valid_file_keeps_a_location(noise: str) -> None:
    cut = len(noise) % (len(GOOD) + 1)
    _check(GOOD[:cut] + noise + GOOD[cut:])


words = st.sampled_from(
    ["/stablectl", "backport", "skip", "retest", "release", "to", "3.11.2", "abc1234", "@x", ""]
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=40), st.lists(words, max_size=6).map(" ".join)), max_size=8)
)
def test_comment_commands_never_raise(lines: list[str]) -> None:
    body = "\n".join(lines)
    got = parse_commands(body)
    for c in got:
        assert isinstance(c, (Command, Problem))
        if isinstance(c, Problem):
            assert c.text  # says what is wrong
    # Only lines naming the command word can be commands.
    assert len(got) <= sum(1 for ln in body.splitlines() if "/stablectl" in ln)
