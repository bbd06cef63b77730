"""vex.json: the mirror's CVE statements as a CSAF 2.0 VEX document, validated against the
official CSAF 2.0 JSON schema (as the `csaf-vex` package ships it) and its VEX-profile and
mandatory tests, on the demo's real status and on every kind of statement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import csaf_vex
import pytest
from csaf_vex.verification import Verifier
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from stablectl.controller.vex import vex_document
from tests.helpers import run_cli

SCHEMAS = Path(csaf_vex.__file__).parent / "verification" / "schemas"


def validate(doc: dict[str, Any]) -> None:
    """The official schema (CVSS schemas registered under the URLs it refers to), then the
    VEX profile's and CSAF's mandatory tests."""
    schema = json.loads((SCHEMAS / "csaf_2_0.json").read_text())
    resources = []
    for name, url in (
        ("cvss_v2_0.json", "https://www.first.org/cvss/cvss-v2.0.json"),
        ("cvss_v3_0.json", "https://www.first.org/cvss/cvss-v3.0.json"),
        ("cvss_v3_1.json", "https://www.first.org/cvss/cvss-v3.1.json"),
    ):
        resources.append((url, Resource.from_contents(json.loads((SCHEMAS / name).read_text()))))
    validator = Draft202012Validator(schema, registry=Registry().with_resources(resources))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    report = Verifier(doc).run_all()
    failures = [f"{r.test_id}: {r.message}" for r in report.failures]
    assert report.passed, failures


def status(**series: Any) -> dict[str, Any]:
    base = {
        "name": "3.9.2",
        "branch": "3.9.2-stable",
        "releases": [],
        "pending": [],
        "merged_unreleased": [],
        "not_applicable": [],
    }
    return {
        "schema": "stablectl.status/1",
        "project": "pyexample",
        "generated": "2026-12-03T00:00:00Z",
        "mirror": "https://github.com/example/cpython-stable.git",
        "series": [{**base, **series}],
    }


def by_cve(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["cve"]: v for v in doc["vulnerabilities"]}


def test_every_kind_of_statement_validates() -> None:
    rel = {"version": "3.9.2.1", "tag": "v3.9.2.1", "url": None, "cves": ["CVE-2024-0001"]}
    rel2 = {"version": "3.9.2.2", "tag": "v3.9.2.2", "url": None, "cves": []}
    na = {
        "cves": ["CVE-2024-0004"],
        "reason": "changes Lib/new.py, which 3.9.2-stable does not have",
        "verdict": "absent-code",
    }
    nb = {
        "cves": ["CVE-2024-0005"],
        "reason": "not built by this line: it changes only PC/x.c",
        "verdict": "not-built",
    }
    # A NEWS clarification judged not applicable never hides its CVE's real fix.
    news = {
        "cves": ["CVE-2024-0001"],
        "reason": "it changes only documentation",
        "verdict": "documentation-only",
    }
    doc = vex_document(
        status(
            releases=[rel, rel2],
            merged_unreleased=[{"cves": ["CVE-2024-0002"]}],
            pending=[
                {"cves": ["CVE-2024-0003"], "outcome": "new-conflict", "pr": None},
                {
                    "cves": ["CVE-2024-0006"],
                    "outcome": "new-clean",
                    "pr": {"url": "https://x/pull/9"},
                },
            ],
            not_applicable=[na, nb, news],
        ),
        namespace="https://github.com/example/cpython-stable",
    )
    validate(doc)
    v = by_cve(doc)
    base, r1, r2 = "pyexample-3.9.2", "pyexample-3.9.2.1", "pyexample-3.9.2.2"
    assert v["CVE-2024-0001"]["product_status"] == {"fixed": [r1, r2], "known_affected": [base]}
    assert v["CVE-2024-0002"]["product_status"] == {"known_affected": [base, r1, r2]}
    assert v["CVE-2024-0003"]["product_status"] == {"under_investigation": [base, r1, r2]}
    assert v["CVE-2024-0006"]["remediations"][0]["details"].endswith("https://x/pull/9.")
    assert v["CVE-2024-0004"]["product_status"] == {"known_not_affected": [base, r1, r2]}
    assert v["CVE-2024-0004"]["flags"][0]["label"] == "vulnerable_code_not_present"
    assert v["CVE-2024-0005"]["flags"][0]["label"] == "component_not_present"
    assert "PC/x.c" in v["CVE-2024-0005"]["threats"][0]["details"]


def test_the_feed_writes_the_demos_vex(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = demo / "site"
    r = run_cli(
        capsys,
        "--state-dir",
        str(demo / "state"),
        "feed",
        "--policy",
        str(demo / "policy.yaml"),
        "--out",
        str(out),
    )
    assert r.code == 0, r.err
    doc = json.loads((out / "vex.json").read_text())
    validate(doc)
    v = by_cve(doc)
    # The demo's released CVE: fixed in both lines' first releases, affected before.
    assert v["CVE-2023-24329"]["product_status"]["fixed"] == [
        "pyexample-3.11.2.1",
        "pyexample-3.12.1.1",
    ]
    assert set(v["CVE-2023-24329"]["product_status"]["known_affected"]) == {
        "pyexample-3.11.2",
        "pyexample-3.12.1",
    }


def osv_schema() -> dict[str, Any]:
    """The OSV schema from the osv package's wheel (.ci/run downloads it; its dependencies
    are not needed to read a file)."""
    import os
    import zipfile

    where = os.environ.get("STABLECTL_OSV_WHEELS", "")
    wheels = sorted(Path(where).glob("osv-*.whl")) if where else []
    if not wheels:
        hint = "pip download --no-deps osv==0.0.22 -d DIR; STABLECTL_OSV_WHEELS=DIR"
        if os.environ.get("STABLECTL_REQUIRE_SCHEMAS"):
            pytest.fail(f"the OSV schema is needed: {hint}")
        pytest.skip(f"needs the OSV schema: {hint}")
    with zipfile.ZipFile(wheels[-1]) as z:
        data: dict[str, Any] = json.loads(z.read("osv/osv-schema/validation/schema.json"))
    return data


def test_the_demos_osv_records_validate(demo: Path) -> None:
    schema = osv_schema()
    records = sorted((demo / "state" / "releases").glob("*/*/osv-*.json"))
    assert len(records) >= 2
    # The one deviation, said plainly: OSV's schema lists the registered home databases, and
    # a mirror's own prefix (PYEXAMPLE-STABLE-) is not one of them until it is registered
    # (docs/feeds.md). Everything else is the official schema.
    prefix = schema["$defs"]["prefix"]
    prefix["pattern"] = prefix["pattern"].replace("^(", "^(PYEXAMPLE-STABLE|", 1)
    validator = Draft202012Validator(schema)
    for path in records:
        rec = json.loads(path.read_text())
        errors = [f"{path.name} {list(e.path)}: {e.message}" for e in validator.iter_errors(rec)]
        assert not errors
        # The line's real affected range: introduced at its base, fixed at the release's pick.
        events = rec["affected"][0]["ranges"][0]["events"]
        assert list(events[0]) == ["introduced"] and list(events[1]) == ["fixed"]


def test_every_verdict_kind_is_typed_and_has_its_justification() -> None:
    """Verdict kinds are an enum (a new one without a justification fails mypy's
    exhaustiveness check in VerdictKind.vex_justification); not-built alone is a component
    the line does not build."""
    from stablectl.controller.selection import VerdictKind

    got = {k.value: k.vex_justification for k in VerdictKind}
    assert got.pop("not-built") == "component_not_present"
    assert set(got.values()) == {"vulnerable_code_not_present"}
    assert VerdictKind("absent-code") is VerdictKind.ABSENT_CODE
