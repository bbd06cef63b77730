"""Prerequisites: a conflicting fix picked on the upstream commits that wrote the lines it
changes (found by blame on the source side), smallest set first, bounded by the policy."""

from __future__ import annotations

from pathlib import Path

import pygit2

from stablectl.controller.plan import Plan, PlannedFix
from stablectl.controller.selection import FixState
from stablectl.gitops.history import History
from stablectl.gitops.messages import parse_message, prerequisite_of
from tests.helpers import minimal_policy, plan_line

LINES = [f"value_{i} = {i}  # line {i}\n" for i in range(30)]


def text(changes: dict[int, str]) -> str:
    return "".join(changes.get(i, line) for i, line in enumerate(LINES))


def news(name: str) -> dict[str, str | None]:
    return {f"Misc/NEWS.d/next/Security/{name}.rst": f"{name}\n"}


def build(tmp_path: Path, tag_when: int | None = None) -> tuple[History, dict[str, str]]:
    """main and 3.10: after v3.10.2, 3.10 took P2 (rewrites line 10), P1 (rewrites lines
    10-11, on P2's line) and an unrelated commit; then the fix F changes line 11 as P1 left it.
    F needs P1, and P1 needs P2. G needs only P3, which the policy may exclude."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    s: dict[str, str] = {}
    s["root"] = h.commit(
        "main", "base", {"Lib/mod.py": text({}), "Lib/g.py": text({}), "Lib/h.py": text({})}
    )
    h.branch("3.10", s["root"])
    s["v3.10.2"] = h.commit("3.10", "Python 3.10.2", {"README": "3.10.2\n"}, when=tag_when)
    h.tag("v3.10.2", s["v3.10.2"])
    steps = [
        ("P2", "gh-20: Rename value_10 (#21)", {"Lib/mod.py": text({10: "renamed_10 = 10\n"})}),
        (
            "P1",
            "gh-10: Compute value_11 from renamed_10 (#11)",
            {
                "Lib/mod.py": text(
                    {10: "renamed_10 = 10  # base\n", 11: "value_11 = renamed_10 + 1\n"}
                )
            },
        ),
        ("U", "gh-30: Unrelated (#31)", {"README": "3.10 maintenance\n"}),
        ("P3", "gh-40: Tidy g (#41)", {"Lib/g.py": text({5: "value_5 = 5  # tidied\n"})}),
        (
            "F",
            "gh-90: Validate value_11 (#91)",
            {
                "Lib/mod.py": text(
                    {10: "renamed_10 = 10  # base\n", 11: "value_11 = max(renamed_10 + 1, 0)\n"}
                ),
                **news("f"),
            },
        ),
        (
            "G",
            "gh-95: Harden value_5 (#96)",
            {"Lib/g.py": text({5: "value_5 = abs(5)  # tidied\n"}), **news("g")},
        ),
        ("P4", "gh-50: Tidy value_19 (#51)", {"Lib/h.py": text({19: "value_19 = 19  # tidy\n"})}),
        (
            "H",
            "gh-97: Harden value_20 (#98)",
            {
                "Lib/h.py": text({19: "value_19 = 19  # tidy\n", 20: "value_20 = abs(20)\n"}),
                **news("h"),
            },
        ),
    ]
    for name, subject, files in steps:
        s["main-" + name] = h.commit("main", subject, files)
        trailer = f"(cherry picked from commit {s['main-' + name]})"
        msg = f"[3.10] {subject.replace('(#', '(GH-')}\n\n{trailer}\n"
        s[name] = h.commit("3.10", msg, files)
    return h, s


def plan(tmp_path: Path, h: History, extra: str = "") -> Plan:
    return plan_line(tmp_path, h, "3.10.2", "3.10", extra)


def fixes(p: Plan) -> dict[str, PlannedFix]:
    return {pf.candidate.fix.subject.split(":")[0]: pf for pf in p.series[0].fixes}


def test_blamed_commits_stacked_under_the_fix_smallest_set_first(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    p = plan(tmp_path, h)
    f = fixes(p)["gh-90"]
    assert f.status == FixState.NEW_CLEAN_PREREQ
    # P1 alone conflicts (it rewrites P2's line): P2 joins the pool, and {P2, P1} in upstream
    # order is the smallest set that works. The unrelated commit is never a candidate.
    assert [x.sha for x in f.prerequisites] == [s["P2"], s["P1"]]
    assert f.prerequisites[1].where == ("Lib/mod.py:11-12",)
    assert f.prerequisites[1].why == "it writes lines this fix changes, at Lib/mod.py:11-12"
    assert f.chosen is not None and f.chosen.source.sha == s["F"]
    # The chain: each prerequisite a pick with its own -x trailer and the fix it serves.
    repo = pygit2.Repository(str(tmp_path / "state" / "cache" / "t.git"))
    fix_commit = repo[f.chosen.result.commit]
    assert parse_message(fix_commit.message).cherry_picked_from[-1] == s["F"]
    p1 = repo[fix_commit.parents[0].id]
    p2 = repo[p1.parents[0].id]
    assert str(p1.id) == f.prerequisites[1].commit and str(p2.id) == f.prerequisites[0].commit
    assert parse_message(p1.message).cherry_picked_from[-1] == s["P1"]
    assert prerequisite_of(p1.message) == prerequisite_of(p2.message) == f.candidate.fix.key
    assert str(p2.parents[0].id) == s["v3.10.2"]
    # G needs only P3 (one commit), stacked after F's chain.
    g = fixes(p)["gh-95"]
    assert g.status == FixState.NEW_CLEAN_PREREQ
    assert [x.sha for x in g.prerequisites] == [s["P3"]]
    assert g.prerequisites[0].why == "it writes lines this fix changes, at Lib/g.py:6"
    # H changes line 21; P4 wrote line 20, only the context of H's hunk: said so.
    (p4,) = fixes(p)["gh-97"].prerequisites
    assert p4.sha == s["P4"] and p4.context_only
    assert p4.why == "it writes lines next to those this fix changes, at Lib/h.py:20"
    hfix = fixes(p)["gh-97"].chosen
    assert hfix is not None and p.series[0].final_tip == hfix.result.commit
    doc = p.to_json()["series"][0]["fixes"]
    by = {d["subject"].split(":")[0]: d for d in doc}
    assert by["gh-90"]["status"] == "new-clean-with-prerequisites"
    assert [x["commit"] for x in by["gh-90"]["prerequisites"]] == [s["P2"], s["P1"]]


def test_bound_reports_the_chain(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    p = plan(tmp_path, h, "prerequisites: {max_commits: 1}\n")
    f = fixes(p)["gh-90"]
    assert f.status == FixState.NEW_CONFLICT and not f.prerequisites
    assert "no set of at most 1 upstream commits makes it apply" in f.prerequisite_report
    assert f"with {s['P1'][:10]}: {s['P1'][:10]} conflicts itself at Lib/mod.py" in (
        f.prerequisite_report
    )
    # Still within the bound: G needs one.
    assert fixes(p)["gh-95"].status == FixState.NEW_CLEAN_PREREQ


def test_off_and_excluded(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    p = plan(tmp_path, h, "prerequisites: {max_commits: 0}\n")
    assert {k: v.status for k, v in fixes(p).items()} == {
        "gh-90": FixState.NEW_CONFLICT,
        "gh-95": FixState.NEW_CONFLICT,
        "gh-97": FixState.NEW_CONFLICT,
    }
    p = plan(tmp_path / "b", h, f"exclude:\n  - {{sha: {s['main-P3'][:12]}, reason: too big}}\n")
    g = fixes(p)["gh-95"]
    assert g.status == FixState.NEW_CONFLICT
    assert f"no prerequisite candidate ({s['P3'][:10]} is excluded by the policy (too big))" in (
        g.prerequisite_report
    )


def test_release_notes_list_prerequisites_with_the_fix_they_serve(tmp_path: Path) -> None:
    from stablectl.controller.release_history import ShippedFix
    from stablectl.templates import render

    fix = ShippedFix("c2", "[3.10.2-stable] gh-90: Validate", "s2", "f" * 40, True, [], [], [])
    pre = ShippedFix("c1", "[3.10] gh-10: Compute", "p" * 40, None, False, [], [], [], "f" * 40)
    policy = minimal_policy(series="3.10.2", sources="['3.10']")
    notes = render(
        "release_notes.md.j2",
        project="t",
        series=policy.series[0],
        version="3.10.2.1",
        tag="v3.10.2.1",
        fixes=[pre, fix],
        base_tag="v3.10.2",
        previous_tag="v3.10.2",
        artifacts=[],
        web_upstream=None,
        merged={},
    )
    security, other = notes.split("## Security fixes")[1].split("## Other fixes")
    assert "gh-90: Validate" in security and "gh-10" not in other.split("## Prerequisites")[0]
    assert (
        "- [3.10] gh-10: Compute (upstream `pppppppppp`), needed by upstream `ffffffffff` "
        "([3.10.2-stable] gh-90: Validate)" in notes
    )


def test_a_commit_only_on_main_is_no_prerequisite_unless_the_policy_says(tmp_path: Path) -> None:
    """K, a fix only on main, changes a line that P5 (only on main, never backported: a feature
    upstream judged unfit for 3.10) wrote. By default P5 is not offered; with
    `vetted_only: false` it is."""
    h, _ = build(tmp_path)
    p5 = h.commit(
        "main",
        "gh-60: Add a value_25 feature (#61)",
        {"Lib/h.py": text({19: "value_19 = 19  # tidy\n", 25: "f = 25\n"})},
    )
    h.commit(
        "main",
        "gh-99: Bound f (#100)",
        {"Lib/h.py": text({19: "value_19 = 19  # tidy\n", 25: "f = min(25, 9)\n"}), **news("k")},
    )
    k = fixes(plan(tmp_path, h))["gh-99"]
    assert k.status == FixState.NEW_CONFLICT
    assert f"{p5[:10]} is only on main: upstream put it on no maintenance branch" in (
        k.prerequisite_report
    )
    k = fixes(plan(tmp_path / "b", h, "prerequisites: {vetted_only: false}\n"))["gh-99"]
    assert k.status == FixState.NEW_CLEAN_PREREQ
    assert [p.sha for p in k.prerequisites] == [p5]


def test_blame_looks_back_only_to_the_horizon(tmp_path: Path) -> None:
    """A far line's blame of a main fix walked a decade of another branch; lines written
    more than `prerequisites.horizon_days` before the base tag are never prerequisites. Here
    the tag is dated six years after the commits F needs: with the default horizon (365 days)
    blame names none of them; with a longer one, the same chain as ever."""
    h, _ = build(tmp_path, tag_when=1_600_000_000 + 6 * 365 * 86400)
    far = fixes(plan_line(tmp_path / "far", h, "3.10.2", "3.10"))["gh-90"]
    assert far.status == FixState.NEW_CONFLICT and not far.prerequisites
    assert "blame names no commit after the base" in far.prerequisite_report
    long = "prerequisites: {horizon_days: 10000}"
    near = fixes(plan_line(tmp_path / "near", h, "3.10.2", "3.10", long))["gh-90"]
    assert near.status == FixState.NEW_CLEAN_PREREQ
