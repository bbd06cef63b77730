"""Downstream adaptations as sources (controller/downstream.py): a conflict that a published
adaptation resolves (Debian's quilt `debian/patches`, an RPM spec's patches, a fork's branch)
becomes a PR of that adaptation, applied alone, recorded and reviewed as one, and verify names
where it came from."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from stablectl.controller.downstream import read_downstream
from stablectl.controller.selection import FixState
from stablectl.controller.workspace import Workspace
from stablectl.gitops.history import History
from stablectl.gitops.messages import Adapted, adapted_message, adapted_of
from stablectl.gitops.provenance import repick
from stablectl.policy import Downstream, load_policy
from tests.controller.sync.test_sync import SyncEnv, make_env

DEP3 = "Description: Harden ssl hostname matching\n Backport of {sha}, adapted to 3.11.2.\nBug: https://github.com/python/cpython/issues/2300\n\n"


def resolution(e: SyncEnv) -> bytes:
    """A 3.11.2 adaptation of fix D (which conflicts there on every source), as a
    distribution would publish it: a unified diff of Lib/ssl.py against the line."""
    repo = pygit2.Repository(str(e.example.fork))
    tree = repo.references["refs/heads/3.11.2-stable"].peel(pygit2.Commit).tree
    old = bytes(repo[tree["Lib/ssl.py"].id].read_raw()).decode()
    new = old + "# hardened, as the distribution adapted it\n"
    diff = difflib.unified_diff(
        old.splitlines(True), new.splitlines(True), "a/Lib/ssl.py", "b/Lib/ssl.py"
    )
    return "".join(diff).encode()


def with_downstream(e: SyncEnv, spec: str) -> None:
    text = e.policy_path.read_text()
    anchor = "    base: v3.11.2\n"
    assert anchor in text
    e.policy_path.write_text(text.replace(anchor, anchor + f"    downstream: [{spec}]\n", 1))


def quilt(e: SyncEnv, root: Path) -> Path:
    d = root / "debian" / "patches"
    d.mkdir(parents=True)
    sha = e.example.shas["D"]
    (d / "CVE-2026-0001.diff").write_bytes(DEP3.format(sha=sha[:12]).encode() + resolution(e))
    (d / "lib64-paths.diff").write_text("Description: a distribution's own path\n\n")
    (d / "series").write_text("lib64-paths.diff\nCVE-2026-0001.diff\n")
    return d


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_conflict_debian_resolved_becomes_an_adapted_pr_verify_accepts(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    e = make_env(kind, tmp_path, fake, series="3.11.2")
    s = e.example.shas
    e.sync()  # D conflicts: a draft
    (d,) = [p for p in e.open_prs() if p.marker.original == s["D"]]
    assert d.draft
    patches = quilt(e, tmp_path)
    with_downstream(e, f'{{name: "Debian python3.11 3.11.2-6", patches: "{patches}"}}')
    eng = Workspace(load_policy(e.policy_path), e.state)
    try:
        plan = eng.plan()
        pf = next(x for x in plan.series[0].fixes if x.candidate.fix.key == s["D"])
    finally:
        eng.close()
    assert plan.errors == []
    assert pf.status == FixState.NEW_ADAPTED and pf.adapted_from is not None
    assert pf.adapted_from.patch.name == "CVE-2026-0001.diff"
    assert pf.evidence[0].startswith(
        "adapted from Debian python3.11 3.11.2-6's `CVE-2026-0001.diff` (it names upstream "
        f"commit {s['D'][:10]})"
    )
    e.sync()  # the draft is superseded by the adaptation's PR
    e.sync()  # which then records the PR it is reviewed in
    (pr,) = [p for p in e.open_prs() if p.marker.original == s["D"]]
    assert not pr.draft and "adapted" in pr.labels and "conflicts" not in pr.labels
    assert pr.marker.extra["downstream"] == "Debian python3.11 3.11.2-6: CVE-2026-0001.diff"
    assert "Adapted from Debian python3.11 3.11.2-6" in pr.body and "```diff" in pr.body
    assert "+# hardened, as the distribution adapted it" in pr.body
    repo = pygit2.Repository(str(e.example.fork))
    msg = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit).message
    rec = adapted_of(msg)
    assert rec is not None and rec.source == s["D"] and rec.pr == pr.number and rec.interdiff
    assert "Stablectl-Downstream: Debian python3.11 3.11.2-6: CVE-2026-0001.diff" in msg
    assert f"(cherry picked from commit {s['D']})" in msg
    # Not merged before review; reviewed and green, merged; verify accepts the adaptation.
    e.green(pr.head_sha)
    assert not any(a.kind == "merge" for a in e.sync().applied)
    e.review(pr.number)
    report = e.sync()
    assert [a.target for a in report.applied if a.kind == "merge"] == [f"#{pr.number}"]
    r = e.cli("verify", "--series", "3.11.2", "--commits-only", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CVE-2026-0001.diff" in r.stdout  # verify names the downstream source


def test_rpm_spec_patches_in_their_apply_order_and_what_they_name(tmp_path: Path) -> None:
    rpm = tmp_path / "python2"
    (rpm / "SOURCES").mkdir(parents=True)
    (rpm / "SPECS").mkdir()
    (rpm / "SPECS" / "python2.spec").write_text(
        "Name: python2\nPatch0: 00001-lib64.patch\nPatch351: 00351-cve-2019-20907.patch\n"
        "Patch357: 00357-CVE-2021-3177.patch\n%prep\n%patch357 -p1\n%patch0 -p1\n%patch351 -p1\n"
    )
    body = "--- a/Lib/x.py\n+++ b/Lib/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    (rpm / "SOURCES" / "00001-lib64.patch").write_text("lib64\n\n" + body)
    (rpm / "SOURCES" / "00351-cve-2019-20907.patch").write_text(
        "Subject: Avoid infinite loop in tarfile (bpo-39017)\n\n" + body
    )
    (rpm / "SOURCES" / "00357-CVE-2021-3177.patch").write_text(
        "From: someone\nSubject: ctypes buffer overflow\n\nBackport of upstream commit "
        "c347cbe694743cee120457aa6626712f7799a932\n\n" + body
    )
    d = Downstream(name="Fedora python2.7", patches=str(rpm / "SPECS" / "python2.spec"))
    got, problems = read_downstream(d, tmp_path, None, "")
    assert problems == []
    assert [p.name for p in got] == [
        "00357-CVE-2021-3177.patch",
        "00001-lib64.patch",
        "00351-cve-2019-20907.patch",
    ]
    assert got[0].cves == {"CVE-2021-3177"}
    assert "c347cbe694743cee120457aa6626712f7799a932" in got[0].shas
    assert got[2].cves == {"CVE-2019-20907"} and got[2].issues == {"bpo-39017"}
    missing = Downstream(name="x", patches=str(tmp_path / "nowhere"))
    assert read_downstream(missing, tmp_path, None, "")[1] == [
        f"downstream x: {tmp_path / 'nowhere'} not found"
    ]


def test_a_fork_branch_is_a_downstream_source(tmp_path: Path) -> None:
    """ActiveState-style: a fork keeps its adaptations as commits on a branch."""
    e = make_env("local", tmp_path, None, series="3.11.2")
    s = e.example.shas
    e.sync()
    fork2 = tmp_path / "activestate.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(e.example.fork), str(fork2)], check=True)
    work = tmp_path / "as-work"
    subprocess.run(["git", "clone", "-q", "-b", "3.11.2-stable", str(fork2), str(work)], check=True)
    (work / "Lib/ssl.py").write_text(
        (work / "Lib/ssl.py").read_text() + "# hardened, as the distribution adapted it\n"
    )
    git = ["git", "-C", str(work), "-c", "user.name=AS", "-c", "user.email=as@example.org"]
    subprocess.run(
        [*git, "commit", "-qam", f"Fix CVE-2026-0001\n\nBackport of {s['D']}"], check=True
    )
    subprocess.run([*git, "push", "-q", "origin", "HEAD:refs/heads/as-3.11"], check=True)
    with_downstream(e, f'{{name: "ActiveState", git: "{fork2}", branch: as-3.11}}')
    e.sync()
    (pr,) = [p for p in e.open_prs() if p.marker.original == s["D"]]
    assert pr.marker.extra["downstream"].startswith("ActiveState: ")
    assert not pr.draft


def resolve_by_hand(e: SyncEnv, tmp_path: Path, sha: str, series: str) -> None:
    """A maintainer resolves the conflict with `stablectl backport` and `--continue`,
    keeping both sides (an adaptation), as test_sync's hand resolution does."""
    work = tmp_path / f"resolve-{series}"
    r = e.cli("backport", sha[:10], "--series", series, "--dir", str(work))
    assert r.returncode == 0, r.stderr
    text = (work / "Lib/ssl.py").read_text()
    kept = "".join(
        ln for ln in text.splitlines(True) if not ln.startswith(("<<<<<<<", "=======", ">>>>>>>"))
    )
    (work / "Lib/ssl.py").write_text(kept)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    r = subprocess.run(
        [sys.executable, "-m", "stablectl", "backport", "--continue"],
        cwd=work,
        capture_output=True,
        text=True,
        env=e.env(),
    )
    assert r.returncode == 0, r.stderr


def conflicting_on_both_lines(e: SyncEnv) -> str:
    """A security fix that conflicts on 3.11.2 and 3.12.1 where the two lines' code is the
    same (main rewrote the line first): its key."""
    up = History(e.example.upstream, clock=2_000_000_000)
    ssl = up.read("main", "Lib/ssl.py")
    rewritten = ssl.replace("# ssl line 23\n", "# ssl line 23 (rewritten)\n")
    up.commit("main", "Rewrite ssl line 23 (#98760)", {"Lib/ssl.py": rewritten})
    return up.commit(
        "main",
        "gh-98765: Harden ssl line 23 (#98766)",
        {
            "Lib/ssl.py": rewritten.replace("(rewritten)", "(hardened)"),
            "Misc/NEWS.d/next/Security/gh-98765.rst": "Harden ssl line 23.\n",
        },
    )


def test_a_resolution_merged_on_one_line_is_offered_to_the_others(tmp_path: Path) -> None:
    """Resolve once, reuse: a fix conflicts on 3.11.2 and 3.12.1 where the two lines'
    code is the same; once a maintainer's resolution is reviewed and merged on 3.11.2,
    3.12.1 is offered it as an adaptation ("adapted in #N"), reviewed as any."""
    e = make_env("local", tmp_path, None)
    fix = conflicting_on_both_lines(e)
    e.sync()
    drafts = {p.marker.series for p in e.open_prs() if p.marker.original == fix and p.draft}
    assert drafts == {"3.11.2", "3.12.1"}
    resolve_by_hand(e, tmp_path, fix, "3.11.2")
    (pr,) = [p for p in e.open_prs() if p.marker.original == fix and p.marker.series == "3.11.2"]
    e.review(pr.number)
    e.green(pr.head_sha)
    report = e.sync()
    assert f"#{pr.number}" in [a.target for a in report.applied if a.kind == "merge"]
    e.sync()  # 3.12.1's draft superseded by the reused resolution
    (other,) = [p for p in e.open_prs() if p.marker.original == fix and p.marker.series == "3.12.1"]
    assert not other.draft and "adapted" in other.labels
    origin = other.marker.extra["downstream"]
    assert origin.startswith("this mirror's 3.11.2-stable: ")
    assert origin.endswith(f"(adapted in #{pr.number})")
    assert "Adapted from this mirror's 3.11.2-stable" in other.body
    e.sync()  # records the PR it is reviewed in
    other = e.new_forge().get_pr(other.number)
    repo = pygit2.Repository(str(e.example.fork))
    rec = adapted_of(repo[pygit2.Oid(hex=other.head_sha)].peel(pygit2.Commit).message)
    assert rec is not None and rec.pr == other.number and rec.source == fix
    text = repo[repo[pygit2.Oid(hex=other.head_sha)].peel(pygit2.Commit).tree["Lib/ssl.py"].id]
    assert b"# ssl line 23\n# ssl line 23 (hardened)\n" in bytes(text.read_raw())


@pytest.mark.parametrize("kind", ["local", "github"])
def test_a_fix_whose_tests_alone_conflict_is_a_draft_to_adapt(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Per part, on both forges: the code picks as upstream wrote it, the test conflicts:
    a draft labelled to-adapt, never clean, whose only markers are in the test; it merges
    only once resolved (`stablectl backport`), as an adaptation."""
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    e = make_env(kind, tmp_path, fake, series="3.11.2")
    up = History(e.example.upstream, clock=2_000_000_000)
    smoke = up.read("main", "Lib/test/test_smoke.py")
    rewritten = smoke.replace("self.assertTrue(True)", "self.assertTrue(True)  # rewritten")
    up.commit("main", "Reword the smoke test (#98770)", {"Lib/test/test_smoke.py": rewritten})
    zipfile = up.read("main", "Lib/zipfile.py")
    fix = up.commit(
        "main",
        "gh-98771: Refuse overlapping zip entries (#98772)",
        {
            "Lib/zipfile.py": zipfile.replace("# zipfile line 3\n", "# zipfile line 3 (safe)\n"),
            "Lib/test/test_smoke.py": rewritten.replace("# rewritten", "# rewritten, checked"),
            "Misc/NEWS.d/next/Security/gh-98771.rst": "Refuse overlapping zip entries.\n",
        },
    )
    e.sync()
    (pr,) = [p for p in e.open_prs() if p.marker.original == fix]
    assert pr.draft and pr.title.startswith("[to adapt] [3.11.2-stable] gh-98771:")
    assert "to-adapt" in pr.labels and "conflicts" not in pr.labels
    assert "tests: Lib/test/test_smoke.py conflicts: to adapt by hand" in pr.body
    repo = pygit2.Repository(str(e.example.fork))
    tree = repo[pygit2.Oid(hex=pr.head_sha)].peel(pygit2.Commit).tree

    def text(path: str) -> str:
        return bytes(repo[tree[path].id].read_raw()).decode()

    assert "# zipfile line 3 (safe)\n" in text("Lib/zipfile.py")
    assert "<<<<<<<" in text("Lib/test/test_smoke.py") and "<<<<<<<" not in text("Lib/zipfile.py")
    # Approved and green, it is still not merged: it is not upstream's change.
    e.review(pr.number)
    e.green(pr.head_sha)
    assert not any(a.kind == "merge" for a in e.sync().applied)


def test_a_resolution_pushed_straight_citing_a_merged_pr_is_not_reused(tmp_path: Path) -> None:
    """An attacker with push access puts a commit straight onto 3.11.2-stable whose record
    cites the fix's merged, reviewed PR and whose interdiff is right for its own content: the
    content nobody reviewed is never offered to another line as "adapted in #N"."""
    e = make_env("local", tmp_path, None)
    fix = conflicting_on_both_lines(e)
    e.sync()
    resolve_by_hand(e, tmp_path, fix, "3.11.2")
    (pr,) = [p for p in e.open_prs() if p.marker.original == fix and p.marker.series == "3.11.2"]
    e.review(pr.number)
    e.green(pr.head_sha)
    e.sync()
    # The attacker: a commit straight onto the branch, recorded "as reviewed in #N".
    policy = load_policy(e.policy_path)
    eng = Workspace(policy, e.state, forge=e.new_forge())
    try:
        eng.fetch()
        repo = eng.cache.repo
        tip = repo.revparse_single("refs/remotes/fork/3.11.2-stable").peel(pygit2.Commit)
        text = bytes(repo[tip.tree["Lib/ssl.py"].id].read_raw()).decode()
        evil = History(e.example.fork).commit(
            "tmp-evil",
            f"Harden more\n\n(cherry picked from commit {fix})\n",
            {"Lib/ssl.py": text + "# never reviewed\n"},
            parent=str(tip.id),
        )
        eng.fetch()
        _outcome, change = repick(
            eng.cache.repo,
            eng.picker(policy.get_series("3.11.2")),
            eng.cache.repo[pygit2.Oid(hex=evil)].peel(pygit2.Commit),
            fix,
        )
    finally:
        eng.close()
    rec = Adapted(fix, change.lines, pr.number, change.digest)
    fork = History(e.example.fork)
    forged = fork.commit(
        "3.11.2-stable",
        adapted_message(f"Harden more\n\n(cherry picked from commit {fix})\n", rec),
        {"Lib/ssl.py": text + "# never reviewed\n"},
        parent=str(tip.id),
    )
    eng = Workspace(policy, e.state, forge=e.new_forge())
    try:
        eng.fetch()
        offered = eng.downstream(policy.get_series("3.12.1"))
    finally:
        eng.close()
    names = [p.name for p in offered]
    assert not any(n.startswith(forged[:12]) for n in names)
    assert any(n.endswith(f"(adapted in #{pr.number})") for n in names)  # the reviewed one


def test_a_plan_without_the_forge_never_vouches_for_a_pushed_adaptation(tmp_path: Path) -> None:
    """An attacker's helper found it: a commit pushed straight with a record citing the fix's
    open PR is "carried" by a plan that cannot read the forge (a recorded adaptation is taken
    on its word there), and that yes was remembered; the next sync, which can read the forge,
    trusted it, took the fix as applied and closed the maintainer's reviewed PR."""
    e = make_env("local", tmp_path, None)
    fix = conflicting_on_both_lines(e)
    e.sync()
    resolve_by_hand(e, tmp_path, fix, "3.11.2")
    (pr,) = [p for p in e.open_prs() if p.marker.original == fix and p.marker.series == "3.11.2"]
    policy = load_policy(e.policy_path)
    fork = History(e.example.fork)
    eng = Workspace(policy, e.state)
    try:
        eng.fetch()
        repo = eng.cache.repo
        tip = repo.revparse_single("refs/remotes/fork/3.11.2-stable").peel(pygit2.Commit)
        text = bytes(repo[tip.tree["Lib/ssl.py"].id].read_raw()).decode()
        message = f"Tidy ssl\n\n(cherry picked from commit {fix})\n"
        draft = fork.commit(
            "tmp-y", message, {"Lib/ssl.py": text + "# mallory\n"}, parent=str(tip.id)
        )
        eng.fetch()
        series = policy.get_series("3.11.2")
        _o, change = repick(
            repo, eng.picker(series), repo[pygit2.Oid(hex=draft)].peel(pygit2.Commit), fix
        )
    finally:
        eng.close()
    record = Adapted(fix, change.lines, pr.number, change.digest)
    fork.commit(
        "3.11.2-stable", adapted_message(message, record), {"Lib/ssl.py": text + "# mallory\n"}
    )
    offline = Workspace(policy, e.state)  # no forge: `plan --offline` on a laptop
    try:
        offline.fetch()
        offline.plan()
    finally:
        offline.close()
    report = e.sync()
    assert not [a for a in report.applied if a.target == f"#{pr.number}" and a.kind == "close"]
    assert e.new_forge().get_pr(pr.number).state == "open"
