"""The OSV advisory database as a flag source: fixed commits, their backports, referenced
issues; ids and CVEs carried into the plan and PR bodies; a git source refreshed each run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.gitops.history import History
from stablectl.policy import Policy
from tests.helpers import Line

UPSTREAM_URL = "https://github.com/python/cpython"


def osv(
    id_: str, cve: str, fixed: list[str], refs: list[str], repo: str = UPSTREAM_URL
) -> dict[str, Any]:
    return {
        "schema_version": "1.5.0",
        "id": id_,
        "aliases": [cve],
        "summary": "x",
        "affected": [
            {
                "ranges": [
                    {
                        "type": "GIT",
                        "repo": repo,
                        "events": [{"introduced": "0"}, *({"fixed": f} for f in fixed)],
                    }
                ]
            }
        ],
        "references": [{"type": "REPORT", "url": u} for u in refs],
    }


def build(tmp_path: Path) -> tuple[History, dict[str, str]]:
    h = History(tmp_path / "up.git")
    s: dict[str, str] = {}
    s["base"] = h.commit("main", "base", {"Lib/a.py": "1\n", "Lib/b.py": "1\n", "Lib/c.py": "1\n"})
    h.tag("v1", s["base"])
    h.branch("1.x", s["base"])
    s["fixed"] = h.commit("main", "gh-100: Fix a (#101)", {"Lib/a.py": "2\n"})
    s["fixed-bp"] = h.backport(s["fixed"], "1.x")
    s["by-issue"] = h.commit("main", "gh-200: Fix b (#201)", {"Lib/b.py": "2\n"})
    s["by-pr"] = h.commit("main", "Fix c quietly (#301)", {"Lib/c.py": "2\n"})
    s["other"] = h.commit("main", "gh-400: Unrelated (#401)", {"Lib/a.py": "3\n"})
    return h, s


def policy(line: Line, source: Path) -> Policy:
    return line.policy(
        'name: "1", base: v1, branch: 1-stable, sources: ["1.x", main], since: 2000-01-01',
        f"""\
  - name: psf-advisories
    security: true
    advisories: {source}
    advisory_repo: {UPSTREAM_URL}
""",
        project="adv",
        upstream="forge: python/cpython",
    )


def write_db(d: Path, records: list[dict[str, Any]]) -> None:
    (d / "advisories" / "python").mkdir(parents=True, exist_ok=True)
    for r in records:
        (d / "advisories" / "python" / f"{r['id']}.json").write_text(json.dumps(r))


def planned_fixes(
    tmp_path: Path, h: History, s: dict[str, str], records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The plan's fixes by key, with `records` as the advisory database."""
    line = Line.of(h, tmp_path, "1-stable", s["base"])
    db = tmp_path / "db"
    write_db(db, records)
    plan = line.plan(policy(line, db)).to_json()
    return {f["key"]: f for f in plan["series"][0]["fixes"]}


def test_index_parses_osv() -> None:
    rec = osv(
        "PSF-2023-1",
        "CVE-2023-1",
        ["a" * 40],
        [
            "https://bugs.python.org/issue42",
            "https://github.com/python/cpython/issues/7",
            "https://github.com/python/cpython/pull/8",
            "https://github.com/other/x/pull/9",
        ],
    )
    other = osv("PSF-2023-2", "CVE-2023-2", ["b" * 40], [], repo="https://github.com/other/x")
    idx = AdvisoryIndex.from_records(
        [
            ("1.json", json.dumps(rec).encode()),
            ("2.json", json.dumps(other).encode()),
            ("bad.json", b"{not json"),
        ],
        UPSTREAM_URL + ".git",
    )
    assert idx.count == 2 and set(idx.fixed) == {"a" * 40}
    assert set(idx.issues) == {"bpo-42", "gh-7"} and set(idx.prs) == {8}
    assert idx.match("a" * 40, [], [], None)[0] == "fixed commit"
    assert idx.match("c" * 40, ["a" * 40], [], None)[0].startswith("backport of fixed")
    assert idx.match("c" * 40, [], ["gh-7"], None)[0] == "gh-7 in references"
    assert idx.match("c" * 40, [], [], 8)[0] == "PR 8 in references"
    assert idx.match("c" * 40, [], ["gh-9"], 9) is None


def test_advisories_flag_fixes_in_the_plan(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    fixes = planned_fixes(
        tmp_path,
        h,
        s,
        [
            osv("PSF-2024-1", "CVE-2024-0001", [s["fixed"]], []),
            osv(
                "PSF-2024-2", "CVE-2024-0002", [], ["https://github.com/python/cpython/issues/200"]
            ),
            osv("PSF-2024-3", "CVE-2024-0003", [], ["https://github.com/python/cpython/pull/301"]),
        ],
    )
    assert set(fixes) == {s["fixed"], s["by-issue"], s["by-pr"]}
    a = fixes[s["fixed"]]
    assert a["cves"] == ["CVE-2024-0001"] and a["security"]
    assert a["source"]["commit"] == s["fixed-bp"]  # the 1.x backport, flagged through its group
    reasons = " ".join(fl["reason"] for fl in a["flags"])
    assert "PSF-2024-1 (CVE-2024-0001)" in reasons
    assert fixes[s["by-issue"]]["cves"] == ["CVE-2024-0002"]
    assert "gh-200 in references" in fixes[s["by-issue"]]["flags"][0]["reason"]
    assert "PR 301 in references" in fixes[s["by-pr"]]["flags"][0]["reason"]


def test_git_source_is_refreshed_every_run(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    line = Line.of(h, tmp_path, "1-stable", s["base"])
    db = tmp_path / "dbrepo"
    write_db(db, [osv("PSF-2024-1", "CVE-2024-0001", [s["fixed"]], [])])

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(db), "-c", "user.name=t", "-c", "user.email=t@e", *args],
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "one")
    pol = policy(line, db / ".git")

    def keys() -> set[str]:
        plan = line.plan(pol).to_json()
        return {f["key"] for f in plan["series"][0]["fixes"]}

    assert keys() == {s["fixed"]}
    write_db(db, [osv("PSF-2024-9", "CVE-2024-0009", [s["other"]], [])])
    git("add", "-A")
    git("commit", "-qm", "two")
    assert keys() == {s["fixed"], s["other"]}  # the cached plan notices the new advisory


def test_fixes_an_advisory_lists_together_follow_the_first(tmp_path: Path) -> None:
    """PSF-2024-5 lists gh-100's fix and, by reference, gh-200's: the later follows the
    earlier (so a release waits for both); an unrelated advisory's fix follows nothing."""
    h, s = build(tmp_path)
    fixes = planned_fixes(
        tmp_path,
        h,
        s,
        [
            osv(
                "PSF-2024-5",
                "CVE-2024-0005",
                [s["fixed"]],
                ["https://github.com/python/cpython/issues/200"],
            ),
            osv("PSF-2024-3", "CVE-2024-0003", [], ["https://github.com/python/cpython/pull/301"]),
        ],
    )
    assert fixes[s["fixed"]]["follows"] is None and fixes[s["by-pr"]]["follows"] is None
    later = fixes[s["by-issue"]]
    assert later["follows"] == s["fixed"] and later["security"]
    hit = next(f for f in later["flags"] if f["rule"] == "follow-up")
    assert "advisory PSF-2024-5 lists both" in hit["reason"]


def test_a_code_fix_never_follows_a_news_commit(tmp_path: Path) -> None:
    """bpo-35907 (CVE-2019-9948) on 3.6.8: the advisory lists the code fix and, through its
    issue, "Clarify the NEWS entry"; the line's own backport of the fix came later than the
    clarification on main, so in apply order the NEWS commit came first and the CVE fix became
    its follow-up, inherited its "not applicable" and got no PR. Upstream main's order, and
    only a commit that changes code, decide which fix the others follow."""
    h = History(tmp_path / "up.git")
    s: dict[str, str] = {}
    s["base"] = h.commit("main", "base", {"Lib/a.py": "1\n"})
    h.tag("v1", s["base"])
    h.branch("1.x", s["base"])
    entry = "Misc/NEWS.d/next/Security/bpo-500.rst"
    s["fixed"] = h.commit(
        "main", "bpo-500: Refuse local_file:// (GH-501)", {"Lib/a.py": "2\n", entry: "x\n"}
    )
    s["news"] = h.commit("main", "bpo-500: Clarify the NEWS entry (GH-502)", {entry: "y\n"})
    s["fixed-bp"] = h.backport(s["fixed"], "1.x")  # after the clarification
    fixes = planned_fixes(
        tmp_path,
        h,
        s,
        [osv("PSF-2019-4", "CVE-2019-9948", [s["fixed"]], ["https://bugs.python.org/issue500"])],
    )
    code, news = fixes[s["fixed"]], fixes[s["news"]]
    assert code["follows"] is None and code["status"] == "new-clean"
    assert news["follows"] == s["fixed"]
    assert news["status"] == "not-applicable"
    # Planned after the fix it follows (whose pick adds the entry), it picks clean and
    # changes only the NEWS entry: documentation only.
    assert news["verdict"] == "documentation-only" and "NEWS" in news["not_applicable"]
