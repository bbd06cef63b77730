"""Applicability: conflicting fixes that do not concern a line are `not-applicable`, with the
reason; conflicts on code the line has stay conflicts (plan level, on built histories)."""

from __future__ import annotations

from pathlib import Path

from stablectl.controller.plan import Plan
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace
from stablectl.gitops.history import History
from stablectl.policy import load_policy
from tests.helpers import plan_line

DAY = 86400
BODY = "".join(f"def f{i}(x):\n    return x + {i}  # original code line {i}\n\n" for i in range(12))


def news(name: str) -> dict[str, str | None]:
    return {f"Misc/NEWS.d/next/Security/{name}.rst": f"{name}\n"}


def build(tmp_path: Path) -> tuple[History, dict[str, str]]:
    """main and a 3.11 branch: 3.11 lacks Lib/new.py (added on main later) and rewrote
    Lib/old.py's f4 to f6 entirely; Lib/both.py diverged on one line."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    s: dict[str, str] = {}
    both = "".join(f"line {i} of a shared module\n" for i in range(20))
    s["root"] = h.commit("main", "base", {"Lib/old.py": BODY, "Lib/both.py": both})
    h.branch("3.11", s["root"])
    old_part = "".join(
        f"def f{i}(x):\n    return x + {i}  # original code line {i}\n\n" for i in (4, 5, 6)
    )
    rewritten = BODY.replace(old_part, 'class Rewritten:\n    """f4 to f6, redone"""\n\n')
    h.commit("3.11", "[3.11] Rewrite f4 to f6", {"Lib/old.py": rewritten})
    h.commit("3.11", "[3.11] Diverge", {"Lib/both.py": both.replace("line 9 of", "LINE 9 of")})
    s["v3.11.0"] = h.commit("3.11", "Python 3.11.0", {"README": "3.11.0\n"})
    h.tag("v3.11.0", s["v3.11.0"])
    h.commit("main", "gh-10: Add a new module (#11)", {"Lib/new.py": "def g():\n    return 1\n"})
    s["absent-file"] = h.commit(
        "main",
        "gh-20: Harden the new module (#21)",
        {"Lib/new.py": "def g():\n    return 2  # hardened\n", **news("a")},
    )
    s["absent-context"] = h.commit(
        "main",
        "gh-30: Harden f5 (#31)",
        {
            "Lib/old.py": BODY.replace("return x + 5  # original code line 5", "return abs(x) + 5"),
            **news("b"),
        },
    )
    s["main-only"] = h.commit(
        "main",
        "gh-40: Fix line 9 (#41)",
        {"Lib/both.py": both.replace("line 9 of", "fixed line 9 of"), **news("c")},
    )
    return h, s


def plan(tmp_path: Path, h: History) -> Plan:
    return plan_line(tmp_path, h, "3.11.0", "3.11")


def backport_a_fix_40_days_later(h: History) -> None:
    """40 days later upstream fixes something else on main and backports it to 3.11."""
    later = h.commit(
        "main",
        "gh-50: Another fix (#51)",
        {"Lib/old.py": BODY.replace("line 1\n", "line 1 (fixed)\n")},
        when=h.clock + 40 * DAY,
    )
    h.backport(later, "3.11")


def states(p: Plan) -> dict[str, tuple[FixState, str]]:
    return {pf.candidate.fix.key: (pf.status, pf.not_applicable) for pf in p.series[0].fixes}


def test_absent_files_and_absent_code_are_not_applicable(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    got = states(plan(tmp_path, h))
    assert got[s["absent-file"]] == (
        FixState.NOT_APPLICABLE,
        "changes Lib/new.py, which 3.11.0-stable does not have",
    )
    assert got[s["absent-context"]] == (
        FixState.NOT_APPLICABLE,
        "the lines it changes in Lib/old.py are not in 3.11.0-stable",
    )
    # The line has the code (one line of it differs): a real conflict, shown as one.
    assert got[s["main-only"]] == (FixState.NEW_CONFLICT, "")


def test_upstream_not_backporting_is_information_not_a_verdict(tmp_path: Path) -> None:
    """Upstream stops backporting long before distributions stop shipping a line: "3.11 took
    later fixes but not this one" once made a fix whose code is on the line not-applicable
    (gh-79096, gh-92888 on 3.9.2). It is now shown to whoever resolves the conflict."""
    h, s = build(tmp_path)
    backport_a_fix_40_days_later(h)
    (pf,) = [f for f in plan(tmp_path, h).series[0].fixes if f.candidate.fix.key == s["main-only"]]
    assert pf.status == FixState.NEW_CONFLICT and not pf.not_applicable
    assert pf.info.startswith("upstream did not backport it to 3.11, which took later fixes")
    assert "40 days after this one" in pf.info


def test_a_later_backport_within_the_grace_period_decides_nothing(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    later = h.commit(
        "main", "gh-60: Soon after (#61)", {"Lib/old.py": BODY.replace("line 2\n", "line 2!\n")}
    )
    h.backport(later, "3.11")
    assert states(plan(tmp_path, h))[s["main-only"]] == (FixState.NEW_CONFLICT, "")


def test_the_policy_can_keep_draft_prs_for_them(tmp_path: Path) -> None:
    h, s = build(tmp_path)
    p = plan(tmp_path, h)  # builds the policy file
    text = (tmp_path / "p.yaml").read_text() + "applicability: {skip: false}\n"
    (tmp_path / "p.yaml").write_text(text)
    engine = Workspace(load_policy(tmp_path / "p.yaml"), tmp_path / "state")
    try:
        p = engine.plan()
    finally:
        engine.close()
    assert states(p)[s["absent-file"]] == (FixState.NEW_CONFLICT, "")
    fix = next(f for f in p.to_json()["series"][0]["fixes"] if f["key"] == s["absent-file"])
    assert fix["status"] == "new-conflict" and fix["not_applicable"] is None


def test_a_backport_without_a_trailer_on_the_own_branch_keeps_it_applicable(
    tmp_path: Path,
) -> None:
    """3.10's CVE-2020-10735 backport names gh-95778 but carries no -x trailer: the own branch
    did take the fix, so the main original is never judged "main only"."""
    h, s = build(tmp_path)
    backport_a_fix_40_days_later(h)
    h.commit("3.11", "[3.11] gh-40: Fix line 9 the 3.11 way (#99)", {"README": "gh-40\n"})
    assert states(plan(tmp_path, h))[s["main-only"]] == (FixState.NEW_CONFLICT, "")


def test_a_fix_whose_code_partly_exists_on_the_line_stays_a_conflict(tmp_path: Path) -> None:
    """It changes a module the line lacks and one it has (with the context): some of what it
    fixes is there, so a person must look (seen on 3.10.2: gh-100001's doc conflict)."""
    h, _ = build(tmp_path)
    both = h.read("main", "Lib/both.py")
    mixed = h.commit(
        "main",
        "gh-70: Harden both (#71)",
        {
            "Lib/new.py": "def g():\n    return 3  # hardened again\n",
            "Lib/both.py": both.replace("line 15 of", "hardened line 15 of"),
            **news("d"),
        },
    )
    got = states(plan(tmp_path, h))
    assert got[mixed] == (FixState.NEW_CONFLICT, "")
