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


def test_absent_code_names_both_proofs(tmp_path: Path) -> None:
    """Each absent-code verdict carries both proofs: no removed or context line of the code
    is on the line, and no definition its hunks sit in is defined anywhere there."""
    h, s = build(tmp_path)
    fixes = {pf.candidate.fix.key: pf for pf in plan(tmp_path, h).series[0].fixes}
    context = fixes[s["absent-context"]]
    assert context.verdict == "absent-code"
    assert "Lib/old.py: 0 of 5 removed/context lines present" in context.evidence
    assert "`f5(x)` (Lib/old.py) is not defined anywhere on 3.11.0-stable" in context.evidence
    f = fixes[s["absent-file"]]
    assert "Lib/new.py: no such file on 3.11.0-stable" in f.evidence
    assert "`g()` (Lib/new.py) is not defined anywhere on 3.11.0-stable" in f.evidence


def test_code_the_line_keeps_under_another_name_is_not_absent(tmp_path: Path) -> None:
    """A missing file was once proof enough; the line keeps the same function in a module
    the path map does not name (upstream copied it to a new module later): it is defined
    there, so the fix is a conflict for a person, not "not applicable"."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    helper = "def quote_header(value, strict):\n    return value.replace('\\n', ' ')\n"
    rest = "".join(
        f"def other{i}():\n    return {i}  # unrelated code of the module\n" for i in range(30)
    )
    root = h.commit("main", "base", {"Lib/oldmail.py": helper + rest})
    h.branch("3.11", root)
    h.tag("v3.11.0", h.commit("3.11", "Python 3.11.0", {"README": "3.11.0\n"}))
    h.commit("main", "Add mail/quoting (#5)", {"Lib/mail/quoting.py": helper})
    hardened = helper.replace("(' ')", "(' ')")
    hardened = helper.replace("' ')\n", "' ').replace('\\r', ' ')\n")
    fix = h.commit(
        "main", "gh-6: Refuse CR in headers (#7)", {"Lib/mail/quoting.py": hardened, **news("q")}
    )
    pf = {p.candidate.fix.key: p for p in plan(tmp_path, h).series[0].fixes}[fix]
    assert pf.status == FixState.NEW_CONFLICT and not pf.not_applicable


def test_a_feature_the_line_never_had_is_absent_even_where_its_tests_have_context(
    tmp_path: Path,
) -> None:
    """gh-?: glob's `root_dir`/`dir_fd` (3.10) on 3.9.2: the code hunks sit in `_iglob(…,
    dir_fd)`, which the line does not define, and none of their lines is there; the test
    hunks sit in a test class the line has. The tests said "conflict"; the code is absent."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    old_glob = (
        "def _iglob(pathname, recursive, dironly):\n"
        "    dirname = split(pathname)\n    return iter_plain(dirname)\n"
    )
    new_glob = (
        "def _iglob(pathname, root_dir, dir_fd, recursive, dironly):\n"
        "    names = _listdir_relative(root_dir, dir_fd, dironly)\n    if dir_fd is not None:\n"
        "        return iter_with_descriptor(names, dir_fd)\n    return iter_plain(names)\n"
    )
    tests = (
        "class GlobTests(unittest.TestCase):\n"
        "    def test_plain_pattern(self):\n        self.check_plain_pattern()\n"
    )
    root = h.commit("main", "base", {"Lib/glob.py": old_glob, "Lib/test/test_glob.py": tests})
    h.branch("3.9", root)
    h.tag("v3.9.2", h.commit("3.9", "Python 3.9.2", {"README": "3.9.2\n"}))
    h.commit("main", "bpo-38144: Add the dir_fd parameter in glob (#1)", {"Lib/glob.py": new_glob})
    fix = h.commit(
        "main",
        "bpo-43756: Audit the new arguments of glob (#2)",
        {
            "Lib/glob.py": new_glob.replace(
                "    if dir_fd is not None:\n",
                "    if dir_fd is not None:\n        audit_descriptor(dir_fd)\n",
            ),
            "Lib/test/test_glob.py": tests
            + "    def test_audit_descriptor(self):\n        self.check_audit()\n",
            **news("g"),
        },
    )
    pf = {p.candidate.fix.key: p for p in plan_line(tmp_path, h, "3.9.2", "3.9").series[0].fixes}[
        fix
    ]
    assert pf.status == FixState.NOT_APPLICABLE and pf.verdict == "absent-code"
    assert pf.not_applicable == "the lines it changes in Lib/glob.py are not in 3.9.2-stable"
    assert (
        "`_iglob(pathname, root_dir, dir_fd, recursive, dironly)` (Lib/glob.py) is not "
        "defined anywhere on 3.9.2-stable"
    ) in pf.evidence


def test_a_conflict_whose_code_change_is_already_there_is_applied(tmp_path: Path) -> None:
    """197f0447e3 and b7378d7728 on 3.6.8: every line the fix adds to the code is on the line
    and none it removes, only its test is not: the fix is applied, not a conflict."""
    h = History(tmp_path / "up.git", clock=1_600_000_000)
    code = (
        "def check(url):\n    if bad(url):\n        raise ValueError('bad url')\n    return url\n"
    )
    fixed = code.replace("ValueError('bad url')", "InvalidURL('control characters in url')")
    tests = "class T:\n    def test_old_behaviour(self):\n        self.expect_value_error_here()\n"
    root = h.commit("main", "base", {"Lib/http/client.py": code, "Lib/test/test_httplib.py": tests})
    h.branch("3.6", root)
    # The line's own backport folded the change in, with its own test.
    h.commit(
        "3.6", "[3.6] bpo-30458: Disallow control characters (#9)", {"Lib/http/client.py": fixed}
    )
    h.tag("v3.6.8", h.commit("3.6", "Python 3.6.8", {"README": "3.6.8\n"}))
    h.commit(
        "main", "Tests rewritten (#3)", {"Lib/test/test_httplib.py": tests.replace("old", "older")}
    )
    fix = h.commit(
        "main",
        "bpo-30458: Use InvalidURL instead of ValueError (#13044)",
        {
            "Lib/http/client.py": fixed,
            "Lib/test/test_httplib.py": tests.replace("old", "older").replace(
                "expect_value_error_here", "expect_invalid_url_here"
            ),
            **news("u"),
        },
    )
    pf = {p.candidate.fix.key: p for p in plan_line(tmp_path, h, "3.6.8", "3.6").series[0].fixes}[
        fix
    ]
    assert pf.status == FixState.APPLIED and pf.verdict == "already-there"
    assert pf.evidence == (
        "Lib/http/client.py: all 1 line(s) it adds are there in order, none of the 1 it removes",
    )
