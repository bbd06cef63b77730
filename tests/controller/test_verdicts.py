"""Verdicts about old and end-of-life lines, each on a built history shaped like the real case
that got it wrong: a pick that changes only NEWS is no fix, a change already folded in is
applied, Python 3's renamed modules are found on 2.7, release commits are never fixes, a build
profile's paths are not built, and a line whose branch ended reads the newer branches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pygit2

from stablectl.controller.plan import Plan, PlannedFix
from stablectl.controller.selection import FixState
from stablectl.gitops.history import History
from tests.helpers import plan_line

BODY = "".join(f"def f{i}(x):\n    return x + {i}  # original code line {i}\n\n" for i in range(12))


def news(name: str) -> dict[str, str | None]:
    return {f"Misc/NEWS.d/next/Security/{name}.rst": f"{name}\n"}


def fixes(p: Plan) -> dict[str, PlannedFix]:
    return {pf.candidate.fix.key: pf for pf in p.series[0].fixes}


def line(tmp_path: Path) -> History:
    """main and 3.11 with the tag v3.11.0; Lib/new.py exists on main only."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"Lib/old.py": BODY})
    h.branch("3.11", root)
    h.tag("v3.11.0", h.commit("3.11", "Python 3.11.0", {"README": "3.11.0\n"}))
    h.commit("main", "gh-10: Add a new module (#11)", {"Lib/new.py": "def g():\n    return 1\n"})
    return h


def test_a_pick_that_changes_only_news_on_the_line_is_not_a_fix(tmp_path: Path) -> None:
    """gh-97514 (CVE-2022-42919) on 3.6.8: the code came in 3.9, the older branch's backport
    is only its NEWS entry, and it picked "clean": that PR would have claimed the CVE."""
    h = line(tmp_path)
    fix = h.commit(
        "main",
        "gh-20: Harden the new module (#21)\n\nCVE-2022-42919",
        {"Lib/new.py": "def g():\n    return 2  # hardened\n", **news("a")},
    )
    h.backport(fix, "3.11", adapt=lambda f: {k: v for k, v in f.items() if k.startswith("Misc/")})
    pf = fixes(plan_line(tmp_path, h, "3.11.0", "3.11"))[fix]
    assert pf.status == FixState.NOT_APPLICABLE and pf.chosen is None
    assert pf.not_applicable == ("changes Lib/new.py, which 3.11.0-stable does not have"), (
        pf.not_applicable
    )
    assert "Lib/new.py: no such file on 3.11.0-stable" in pf.evidence
    assert any("changes only documentation on the line" in e for e in pf.evidence)
    assert "sources searched: 3.11, main" in pf.evidence


def test_a_documentation_only_fix_is_not_applicable(tmp_path: Path) -> None:
    """A flagged commit that only clarifies a NEWS entry fixes no code anywhere."""
    h = line(tmp_path)
    docs = h.commit("main", "gh-30: Clarify the NEWS entry (#31)", news("b"))
    pf = fixes(plan_line(tmp_path, h, "3.11.0", "3.11"))[docs]
    assert pf.status == FixState.NOT_APPLICABLE
    assert pf.not_applicable.startswith("picked onto 3.11.0-stable, it changes only Misc/NEWS.d/")


def test_a_conflict_whose_change_is_already_there_is_applied(tmp_path: Path) -> None:
    """Folded into an earlier backport (with more around it): every line the fix adds is on
    the line and none it removes. It was reported as a conflict."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"Lib/old.py": BODY})
    h.branch("3.11", root)
    fixed = "return abs(x) + 5  # no negative input"
    h.commit(
        "3.11",
        "[3.11] Harden f5 and document it (GH-77)",
        {
            "Lib/old.py": BODY.replace("return x + 5  # original code line 5", fixed).replace(
                "def f5(x):", "def f5(x):  # hardened: x may be negative"
            )
        },
    )
    h.tag("v3.11.0", h.commit("3.11", "Python 3.11.0", {"README": "3.11.0\n"}))
    fix = h.commit(
        "main",
        "gh-40: Harden f5 (#41)",
        {"Lib/old.py": BODY.replace("return x + 5  # original code line 5", fixed), **news("c")},
    )
    pf = fixes(plan_line(tmp_path, h, "3.11.0", "3.11"))[fix]
    assert pf.attempts and all(a.result.outcome == "conflict" for a in pf.attempts)
    assert pf.status == FixState.APPLIED and pf.status.done
    assert pf.applied.startswith("its change is already on 3.11.0-stable")
    assert pf.evidence == (
        "Lib/old.py: all 1 line(s) it adds are there in order, none of the 1 it removes",
    )


def test_a_27_line_finds_python_3_code_under_its_old_name(tmp_path: Path) -> None:
    """On 2.7.18 a fix to Lib/http/client.py was judged absent code although the code is
    Lib/httplib.py's: a 2.7 line maps Python 3's renames by default, for the pick too."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    code = "".join(f"    line{i} = putheader({i})  # http client code {i}\n" for i in range(20))
    py2 = "".join(f"    old{i} = unicode_header({i})  # python 2 only {i}\n" for i in range(40))
    py3 = "".join(f"    new{i} = bytes_header({i})  # python 3 only {i}\n" for i in range(40))
    root = h.commit("main", "base", {"Lib/httplib.py": code + py2})
    h.branch("2.7", root)
    h.tag("v2.7.18", h.commit("2.7", "Python 2.7.18", {"README": "2.7.18\n"}))
    h.commit(
        "main",
        "Python 3: httplib is http.client (#1)",
        {"Lib/httplib.py": None, "Lib/http/client.py": code + py3},
    )
    fix = h.commit(
        "main",
        "gh-50: Reject control characters in headers (#51)",
        {
            "Lib/http/client.py": (code + py3).replace("putheader(7)", "putheader(check(7))"),
            **news("d"),
        },
    )
    p = plan_line(tmp_path, h, "2.7.18", "2.7")
    pf = fixes(p)[fix]
    assert pf.status == FixState.NEW_CLEAN, (pf.status, pf.not_applicable)
    assert pf.chosen is not None and pf.chosen.result.tree is not None
    repo = pygit2.Repository(str(tmp_path / "state" / "cache" / "t.git"))
    tree = repo[pf.chosen.result.tree].peel(pygit2.Tree)
    assert b"putheader(check(7))" in repo[tree["Lib/httplib.py"].id].data
    # With the map turned off the same fix is absent code (and says what it looked for).
    off = plan_line(tmp_path / "off", h, "2.7.18", "2.7", extra_series="path_map: {}")
    assert fixes(off)[fix].not_applicable == (
        "changes Lib/http/client.py, which 2.7.18-stable does not have"
    )


def test_release_commits_are_never_fixes(tmp_path: Path) -> None:
    """The `cve` rule flagged "Python 3.8.5" (its message names the CVEs it ships)."""
    h = line(tmp_path)
    h.commit(
        "3.11",
        "Python 3.11.1\n\nFixes CVE-2022-45061 and CVE-2022-37454.",
        {"Include/patchlevel.h": '"3.11.1"\n', "README": "3.11.1\n"},
    )
    real = h.commit("main", "gh-60: Fix idna (#61)\n\nCVE-2022-45061", {"Lib/old.py": BODY + "#\n"})
    cve = '  - {name: cve, security: true, message: "CVE-\\\\d{4}-\\\\d+"}\n'
    p = plan_line(tmp_path, h, "3.11.0", "3.11", extra=cve)
    assert set(fixes(p)) == {real}


def test_a_build_profile_path_is_not_built(tmp_path: Path) -> None:
    """Debian builds with the system's expat: a fix to the bundled copy only is listed as
    not built by the line, never silently dropped; one that also fixes Lib/ is planned."""
    h = line(tmp_path)
    h.commit("main", "Add expat (#2)", {"Modules/expat/xmlparse.c": "int parse;\n"})
    h.commit("3.11", "[3.11] Add expat (GH-2)", {"Modules/expat/xmlparse.c": "int parse;\n"})
    h.tag("v3.11.1", h.commit("3.11", "Python 3.11.1", {"README": "3.11.1\n"}))
    expat = h.commit(
        "main",
        "gh-70: Update bundled expat to 2.6.0 (#71)",
        {"Modules/expat/xmlparse.c": "int parse_safely;\n", **news("e")},
    )
    both = h.commit(
        "main",
        "gh-72: Harden expat and its wrapper (#73)",
        {
            "Modules/expat/xmlparse.c": "int parse_safely2;\n",
            "Lib/old.py": BODY + "#\n",
            **news("f"),
        },
    )
    profile = 'not_built: ["Modules/expat/*", "PC/*", "PCbuild/*"]'
    got = fixes(plan_line(tmp_path, h, "3.11.1", "3.11", extra_series=profile))
    assert got[expat].status == FixState.NOT_APPLICABLE
    assert got[expat].not_applicable == (
        "not built by this line: it changes only Modules/expat/xmlparse.c (series 3.11.1: "
        "not_built)"
    )
    assert got[expat].evidence == (
        "Modules/expat/xmlparse.c: matches Modules/expat/* (series 3.11.1: not_built)",
    )
    assert got[both].status != FixState.NOT_APPLICABLE


def test_the_policy_build_profile_covers_installers_every_series_shares(tmp_path: Path) -> None:
    """CVE-2022-26488 (the Windows installer, Tools/msi/) was a clean PR on 3.9.2 and
    CVE-2020-8315 (PC/ only) one on 3.6.8: no Linux distribution builds either. The policy's
    `applicability.not_built` is every series' profile; a series' own globs add to it."""
    h = line(tmp_path)
    msi = h.commit(
        "main",
        "bpo-46948: Fix CVE-2022-26488 in the Windows installer (#74)",
        {"Tools/msi/common.wxs": "<Wix/>\n", "PC/layout/main.py": "x = 1\n", **news("m")},
    )
    mac = h.commit(
        "main",
        "gh-75: Harden the macOS installer (#76)",
        {"Mac/BuildScript/b.py": "1\n", **news("n")},
    )
    code = h.commit("main", "gh-77: Harden old (#78)", {"Lib/old.py": BODY + "#\n", **news("o")})
    profile = 'applicability: {not_built: ["PC/*", "PCbuild/*", "Tools/msi/*", "Mac/*"]}'
    got = fixes(plan_line(tmp_path, h, "3.11.0", "3.11", profile))
    assert got[msi].status == FixState.NOT_APPLICABLE and got[msi].verdict == "not-built"
    assert got[msi].not_applicable == (
        "not built by this line: it changes only PC/layout/main.py, Tools/msi/common.wxs "
        "(applicability.not_built)"
    )
    assert got[msi].evidence == (
        "PC/layout/main.py: matches PC/* (applicability.not_built)",
        "Tools/msi/common.wxs: matches Tools/msi/* (applicability.not_built)",
    )
    assert got[mac].status == FixState.NOT_APPLICABLE
    assert got[code].status == FixState.NEW_CLEAN
    # Without a profile the same fixes are PRs, as on c17aff3.
    plain = fixes(plan_line(tmp_path / "plain", h, "3.11.0", "3.11"))
    assert plain[msi].status == FixState.NEW_CLEAN


def test_a_line_whose_branch_ended_reads_the_nearest_newer_branches(tmp_path: Path) -> None:
    """2.7 ended: its fixes come from 3.6's backports (nearest newer branch alive after the
    end) before main's originals; 3.5, which upstream stopped committing to, is not read."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"Lib/a.py": "a\n" * 10, "Lib/b.py": "b\n" * 10})
    for b in ("2.7", "3.5", "3.6"):
        h.branch(b, root)
    h.tag("v2.7.18", h.commit("2.7", "Python 2.7.18", {"README": "2.7.18\n"}))
    h.commit("3.5", "[3.5] Last 3.5 commit", {"README": "3.5\n"}, when=h.clock - 400 * 86400)
    h.commit("main", "Rewrite a (#1)", {"Lib/a.py": "A\n" * 10})
    fix = h.commit("main", "gh-80: Harden a (#81)", {"Lib/a.py": "A\n" * 9 + "safe\n", **news("g")})
    # 3.6's backport is adapted to the old code: the one that applies to 2.7.
    bp = h.backport(fix, "3.6", adapt=lambda f: {**f, "Lib/a.py": "a\n" * 9 + "safe\n"})
    end = "upstream_end: {date: 2020-01-01}"
    p = plan_line(tmp_path, h, "2.7.18", "2.7", extra_series=end)
    assert p.series[0].selection.searched == ("2.7", "3.6", "main")
    pf = fixes(p)[fix]
    assert pf.status == FixState.NEW_CLEAN and pf.chosen is not None
    assert pf.chosen.source.sha == bp and pf.chosen.source.branch == "3.6"
    # Without the end, 3.6 is not read: main's original conflicts.
    before = fixes(plan_line(tmp_path / "before", h, "2.7.18", "2.7"))[fix]
    assert before.status == FixState.NEW_CONFLICT


def test_a_line_whose_branch_ended_reads_other_branches_from_its_end(tmp_path: Path) -> None:
    """bpo-39421 (CVE-2022-48560, heapq use-after-free) was committed to 3.x on 2020-01-23:
    after 2.7's end (2020-01-01), before 2.7.18's tag (2020-04-19) minus the 30-day
    look-back. Other branches are read from the earlier of the two, so it is flagged."""
    day = 86400
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"Modules/_heapqmodule.c": "int heap;\n" * 5})
    h.branch("2.7", root)
    tag_time = h.clock + 200 * day
    h.tag("v2.7.18", h.commit("2.7", "Python 2.7.18", {"README": "2.7.18\n"}, when=tag_time))
    fix = h.commit(
        "main",
        "bpo-39421: Fix posible crashes when operating with the functions in heapq (#18118)",
        {"Modules/_heapqmodule.c": "int heap;\n" * 4 + "int safe;\n", **news("h")},
        when=tag_time - 87 * day,
    )
    end = tag_time - 109 * day
    iso = dt.datetime.fromtimestamp(end, dt.UTC).date().isoformat()
    ended = f"upstream_end: {{date: {iso}, sources: [main]}}"
    got = fixes(plan_line(tmp_path, h, "2.7.18", "2.7", extra_series=ended, since=""))
    assert got[fix].status == FixState.NEW_CLEAN
    # The look-back alone starts 30 days before the tag: the fix is never seen.
    alone = plan_line(
        tmp_path / "alone",
        h,
        "2.7.18",
        "2.7",
        extra_series=ended.replace(
            iso, dt.datetime.fromtimestamp(tag_time - 10 * day, dt.UTC).date().isoformat()
        ),
        since="",
    )
    assert fix not in fixes(alone)


def test_sources_are_read_only_from_since(tmp_path: Path) -> None:
    """A far line read all of main back to where its branch forked (32,768 commits of main
    back to 2013 for a 2.7.18 line): only what a flag can count is read now, main from
    `since` on (the own branch whole)."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    root = h.commit("main", "base", {"Lib/old.py": BODY})
    h.branch("3.11", root)
    h.tag("v3.11.0", h.commit("3.11", "Python 3.11.0", {"README": "3.11.0\n"}))
    old = [h.commit("main", f"Old change {i}", {"Lib/x.py": f"{i}\n"}) for i in range(60)]
    h.clock += 400 * 86400
    fix = h.commit(
        "main", "gh-90: Harden f1 (#91)", {"Lib/old.py": BODY.replace("+ 1 ", "+ 1  "), **news("h")}
    )
    p = plan_line(tmp_path, h, "3.11.0", "3.11", since="2021-06-01")
    assert set(fixes(p)) == {fix}
    assert p.stats["walked"] < len(old)
