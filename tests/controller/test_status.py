"""What downstreams read: `stablectl status`, `stablectl feed` (status.json, Atom, the status
page) and the page itself in headless Chromium (Debian's `chromium`, driven by Playwright):
a CVE lookup with and without JavaScript, and a screenshot kept as a test artifact."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import run_cli

ATOM = "{http://www.w3.org/2005/Atom}"
ARTIFACTS = Path(
    os.environ.get("STABLECTL_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)


def test_status_json_names_pending_fixes_releases_and_cves(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(
        capsys,
        "--state-dir",
        str(demo / "state"),
        "status",
        "--policy",
        str(demo / "policy.yaml"),
        "--json",
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["schema"] == "stablectl.status/1" and data["project"] == "pyexample"
    s = {x["name"]: x for x in data["series"]}
    old = s["3.11.2"]
    assert [rel["tag"] for rel in old["releases"]] == ["v3.11.2.1"]
    assert len(old["releases"][0]["fixes"]) == 6
    (pending,) = old["pending"]  # the fix whose pick conflicts, waiting in a draft PR
    assert pending["outcome"] == "new-conflict" and pending["security"]
    assert pending["pr"]["draft"] and pending["pr"]["state"] == "open"
    assert data["cves"]["CVE-2023-24329"] == [
        {"series": "3.11.2", "state": "released", "release": "v3.11.2.1"},
        {"series": "3.12.1", "state": "released", "release": "v3.12.1.1"},
    ]


def test_a_downstream_on_a_fresh_state_sees_what_the_maintainer_sees(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A downstream runs `status` on a state directory of its own (no manifests, no forge
    database): the releases' fixes and CVEs are derived from the tags' ranges and upstream's
    messages, so it sees 6 fixes and CVE-2023-24329, as the maintainer does, never a silent
    "0 fixes" and "no CVE known"."""

    def status(state: Path) -> dict[str, object]:
        r = run_cli(
            capsys,
            "--state-dir",
            str(state),
            "status",
            "--policy",
            str(demo / "policy.yaml"),
            "--json",
        )
        assert r.code == 0, r.err
        return r.json()  # type: ignore[no-any-return]

    theirs, ours = status(demo / "downstream-state"), status(demo / "state")

    def fixes(data: dict[str, object]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        return {
            s["name"]: [(f["commit"], tuple(f["cves"])) for r in s["releases"] for f in r["fixes"]]
            for s in data["series"]  # type: ignore[attr-defined]
        }

    assert len(fixes(theirs)["3.11.2"]) == 6
    assert fixes(theirs) == fixes(ours)
    assert "CVE-2023-24329" in theirs["cves"]  # type: ignore[operator]


def test_feed_writes_json_atom_and_a_self_contained_page(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = write_site(capsys, demo)
    status = json.loads((out / "status.json").read_text())
    assert [x["name"] for x in status["series"]] == ["3.11.2", "3.12.1"]
    feed = ET.parse(out / "feed.atom").getroot()
    titles = [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")]
    assert "pyexample 3.11.2.1 released" in titles
    assert any(t and t.startswith("[3.11.2] security backport: gh-2100") for t in titles)
    ids = [e.findtext(f"{ATOM}id") for e in feed.iter(f"{ATOM}entry")]
    assert len(ids) == len(set(ids))  # stable, unique entry ids
    page = (out / "index.html").read_text()
    assert '<html lang="en">' in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert 'id="CVE-2023-24329"' in page  # the no-JavaScript answer


def write_site(capsys: pytest.CaptureFixture[str], demo: Path) -> Path:
    """`stablectl feed --out DEMO/site` on the demo's mirror."""
    out = demo / "site"
    r = run_cli(
        capsys,
        *("--state-dir", str(demo / "state"), "feed", "--policy", str(demo / "policy.yaml")),
        *("--out", str(out)),
    )
    assert r.code == 0, r.err
    return out


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("STABLECTL_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (bash .ci/run installs it)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return path


def test_status_page_cve_lookup_in_a_real_browser(
    demo: Path, chromium: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import sync_playwright

    out = write_site(capsys, demo)
    url = (out / "index.html").as_uri()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            assert page.title() == "pyexample stable mirror status"
            page.get_by_label("CVE id").fill("cve-2023-24329")
            page.get_by_role("button", name="Look up").click()
            answer = page.get_by_role("status")
            assert answer.inner_text() == (
                "CVE-2023-24329 — 3.11.2: fixed in v3.11.2.1; 3.12.1: fixed in v3.12.1.1"
            )
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
            page.get_by_label("CVE id").fill("CVE-2099-0001")
            page.keyboard.press("Enter")
            assert "not known to this mirror" in answer.inner_text()
            headings = page.get_by_role("heading", level=2).all_inner_texts()
            assert headings[0] == "Is a CVE fixed?" and "CVE index" in headings
            # Without JavaScript the index answers the same question.
            nojs = browser.new_context(java_script_enabled=False).new_page()
            nojs.goto(url + "#CVE-2023-24329")
            row = nojs.locator("#CVE-2023-24329")
            assert row.inner_text().split("\t") == [
                "CVE-2023-24329",
                "3.11.2",
                "fixed in v3.11.2.1",
            ]
        finally:
            browser.close()
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000
