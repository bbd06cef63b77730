from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from stablectl.errors import PolicyError
from stablectl.policy import load_policy, load_policy_text
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]

GOOD = textwrap.dedent(
    """\
    project: demo
    upstream:
      git: /tmp/up.git
    fork:
      git: /tmp/fork.git
    series:
      - name: "3.10.8"
        base: v3.10.8
        sources: ["3.10", main]
    flags:
      - name: security-news
        paths: ["Misc/NEWS.d/next/Security/*.rst"]
    """
)


def problems(text: str, name: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy_text(text, name)
    return e.value.problems


def test_good_policy_loads_with_defaults() -> None:
    p = load_policy_text(GOOD)
    s = p.series[0]
    assert s.name == "3.10.8"
    assert s.stable_branch == "3.10.8-stable"
    assert s.sources == ["3.10", "main"]
    assert s.lookback_days == 30
    assert p.forge.kind == "local"
    assert p.release.tag == "v{series}.{n}"
    assert p.flags[0].path_matches("Misc/NEWS.d/next/Security/2023.gh-issue-1.rst")
    assert not p.flags[0].path_matches("Misc/NEWS.d/next/Library/2023.gh-issue-1.rst")


def test_version_read_as_float_is_refused_naming_line_and_column() -> None:
    text = GOOD.replace('- name: "3.10.8"', "- name: 3.10").replace(
        'sources: ["3.10", main]', "sources: [3.10, main]"
    )
    got = problems(text)
    assert got == [
        "p.yaml:7:11: series[0].name: must be a string, but YAML reads '3.10' as a number "
        '(3.1); quote it: "3.10"',
        "p.yaml:9:15: series[0].sources[0]: must be a string, but YAML reads '3.10' as a "
        'number (3.1); quote it: "3.10"',
    ]


def test_boolean_where_string_belongs() -> None:
    got = problems(GOOD.replace("base: v3.10.8", "base: yes"))
    assert len(got) == 1
    assert got[0].startswith("p.yaml:8:11: series[0].base: must be a string")
    assert "as a boolean" in got[0]


def test_unknown_field_named_at_its_key() -> None:
    got = problems(GOOD.replace("  main_branch", "") + "colour: blue\n")
    assert got == ["p.yaml:13:1: colour: unknown field"]


def test_missing_field_and_bad_regex_all_reported_together() -> None:
    text = GOOD.replace("  git: /tmp/fork.git\n", "  forge: me/fork\n") + (
        "  - name: cve\n    message: 'CVE-(\\d+'\n"
    )
    got = problems(text)
    assert any(p.startswith("p.yaml:5:3: fork.git: field required") for p in got), got
    assert any("flags[1].message: invalid regular expression" in p for p in got), got
    assert all(p.startswith("p.yaml:") for p in got)


def test_duplicate_key_and_duplicate_series() -> None:
    got = problems(GOOD.replace("project: demo\n", "project: demo\nproject: again\n"))
    assert got[0] == "p.yaml:2:1: project: duplicate key"
    dup = GOOD.replace(
        "flags:",
        '  - name: "3.10.8"\n    base: v3.10.9\n    named_freely: true\n'
        '    sources: ["3.10"]\nflags:',
    )
    got = problems(dup)
    assert any("duplicate series name '3.10.8'" in p for p in got), got


def test_a_series_is_named_by_its_base_and_a_release_is_reviewed_long_enough() -> None:
    """Issue 17: a `3.12.1` series on `v3.11.2` would publish 3.12.1.N releases of 3.11.2's
    code; a release reviewed for less than the floor needs its reason written down."""
    wrong = GOOD.replace('name: "3.10.8"', 'name: "3.12.1"')
    got = problems(wrong)
    assert any(
        p.startswith("p.yaml:") and "series[0]" in p and "whose version is '3.10.8'" in p
        for p in got
    ), got
    freely = "base: v3.10.8\n    named_freely: true"
    named = load_policy_text(wrong.replace("base: v3.10.8", freely))
    assert named.series[0].name == "3.12.1"
    short = GOOD + "release:\n  review_hours: 2\n"
    got = problems(short)
    assert any("release: " in p and "under the floor of 24 hours" in p for p in got), got
    ok = load_policy_text(short + '  short_review: "embargo lifted with the distros"\n')
    assert ok.release.review_hours == 2


def test_rule_without_condition() -> None:
    got = problems(GOOD + "  - name: nothing\n    security: true\n")
    assert got == [
        "p.yaml:13:5: flags[1]: a flag rule needs at least one of paths, message, trailers, "
        "labels, notes, issues, commits, advisories"
    ]


def test_issue_rule_needs_a_narrowing_search() -> None:
    """A title-only issue rule would read every upstream issue: refused, naming the place."""
    got = problems(GOOD + "  - name: retitled\n    issues:\n      title: CVE\n")
    assert len(got) == 1 and got[0].startswith("p.yaml:15:7: flags[1].issues: ")
    assert "give `search` terms" in got[0]
    got = problems(GOOD + "  - name: retitled\n    issues: {search: x, title: '('}\n")
    assert len(got) == 1 and "flags[1].issues.title" in got[0] and "regular expression" in got[0]
    ok = load_policy_text(GOOD + "  - name: sec\n    issues: {labels: [type-security]}\n")
    assert ok.flags[1].issues is not None
    assert ok.flags[1].issues.queries() == ['label:"type-security"']


def test_unreadable_yaml_names_line() -> None:
    got = problems("project: [unclosed\nupstream: {}\n")
    assert len(got) == 1 and got[0].startswith("p.yaml:") and "(yaml)" in got[0]
    assert problems("") == ["p.yaml:1:1: (top level): the policy file is empty"]
    assert problems("- a\n- b\n") == ["p.yaml:1:1: (top level): a policy is a mapping of fields"]


def test_missing_file() -> None:
    with pytest.raises(PolicyError) as e:
        load_policy("/nonexistent/policy.yaml")
    assert "no such policy file" in e.value.problems[0]


@pytest.mark.parametrize("name", ["cpython.yaml", "systemd.yaml"])
def test_shipped_policies_are_valid(name: str) -> None:
    p = load_policy(ROOT / "policies" / name)
    assert p.series and p.flags
    for s in p.series:
        assert isinstance(s.name, str) and s.base


def test_policy_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace('"3.10.8"', "3.10"))
    r = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "policy", "check", str(bad))
    assert r.code == 2
    assert f"{bad}:7:11: series[0].name: must be a string" in r.err
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    r = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "policy", "check", str(good))
    assert r.code == 0, r.err
    assert "ok" in r.out
    r = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "policy", "check", "--json", str(bad))
    assert r.code == 2
    assert r.json()["ok"] is False


def test_policy_check_with_cache_checks_tags_and_branches(
    example_template: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stablectl.controller.demo import Example

    assert isinstance(example_template, Example)
    pol = tmp_path / "p.yaml"
    text = example_template.policy_yaml().replace(
        "base: v3.12.1", "base: v3.12.9\n    named_freely: true"
    )
    pol.write_text(text.replace('sources: ["3.12", "main"]', 'sources: ["3.12", "mian"]'))
    state = str(tmp_path / "state")
    # Plan fetches, then fails on the semantic problems (exit 2, nothing else done).
    r = run_cli(capsys, "--state-dir", state, "plan", "--policy", str(pol))
    assert r.code == 2
    assert "upstream has no tag 'v3.12.9'" in r.err
    r = run_cli(capsys, "--state-dir", state, "policy", "check", str(pol))
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert any(
        ln.startswith(f"{pol}:") and "series[1].base: upstream has no tag 'v3.12.9'" in ln
        for ln in lines
    ), lines
    assert any("series[1].sources[1]: upstream has no branch 'mian'" in ln for ln in lines)


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "policy", "schema")
    assert r.code == 0
    schema = json.loads(r.out)
    assert schema["title"] == "stablectl policy"
    assert "series" in schema["properties"]
    assert schema["$defs"]["Series"]["properties"]["name"]["type"] == "string"


def test_docs_cover_every_field() -> None:
    """docs/policy.md names every field of the model (a new field needs its doc line)."""
    import typing

    from pydantic import BaseModel

    from stablectl.policy import Policy

    doc = (ROOT / "docs" / "policy.md").read_text()
    missing: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            path = prefix + name
            if f"`{path}`" not in doc:
                missing.append(path)
            ann = f.annotation
            list_like = typing.get_origin(ann) is list
            for a in typing.get_args(ann) or (ann,):
                if isinstance(a, type) and issubclass(a, BaseModel):
                    walk(a, path + ("[]." if list_like else "."))

    walk(Policy, "")
    assert missing == []


def test_security_doc_names_only_tests_that_exist() -> None:
    """docs/security.md's guarantee table points at tests by name: each must exist."""
    import re

    text = (ROOT / "docs" / "security.md").read_text()
    named = set(re.findall(r"::(test_\w+)", text))
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    missing = sorted(n for n in named if f"def {n}(" not in sources)
    assert len(named) > 20 and not missing, missing
