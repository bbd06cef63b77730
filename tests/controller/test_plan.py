from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest

from stablectl.controller.demo import Example
from stablectl.controller.workspace import Workspace
from stablectl.errors import GitError, UpstreamRewrittenError
from stablectl.gitops.history import History
from stablectl.gitops.objects import commit as get_commit
from stablectl.policy import load_policy_text
from tests.helpers import Line, run_cli


def engine_for(ex: Example, state: Path, extra: str = "") -> Workspace:
    return Workspace(load_policy_text(ex.policy_yaml(extra=extra)), state, committer_time=1)


def by_key(plan_json: dict[str, Any], series: str) -> dict[str, dict[str, Any]]:
    s = next(x for x in plan_json["series"] if x["name"] == series)
    return {f["key"]: f for f in s["fixes"]}


@pytest.fixture
def plan311(example_template: Example, tmp_path: Path) -> dict[str, dict[str, Any]]:
    eng = engine_for(example_template, tmp_path / "state")
    eng.fetch()
    plan = eng.plan()
    eng.close()
    return by_key(plan.to_json(), "3.11.2")


def test_states_and_sources(example_template: Example, plan311: dict[str, dict[str, Any]]) -> None:
    s = example_template.shas
    f = plan311
    # A: the series' own maintenance-branch backport is preferred over the original.
    assert f[s["A"]]["status"] == "new-clean"
    assert f[s["A"]]["source"] == {"commit": s["A-3.11"], "kind": "own-backport", "branch": "3.11"}
    assert f[s["A"]]["members"] == sorted([s["A"], s["A-3.11"], s["A-3.12"]])
    # B: only the original exists; flagged by its CVE, which is carried.
    assert f[s["B"]]["status"] == "new-clean"
    assert f[s["B"]]["source"]["kind"] == "original"
    assert f[s["B"]]["cves"] == ["CVE-2023-24329"]
    assert [h["rule"] for h in f[s["B"]]["flags"]] == ["cve"]
    # C: the original conflicts on 3.11; the sibling (3.12) backport applies.
    assert f[s["C"]]["status"] == "new-clean"
    assert f[s["C"]]["source"] == {
        "commit": s["C-3.12"],
        "kind": "sibling-backport",
        "branch": "3.12",
    }
    # D: conflicts everywhere: paths and hunks are reported.
    d = f[s["D"]]
    assert d["status"] == "new-conflict" and d["source"] is None
    assert d["attempts"][0]["conflicts"] == [{"path": "Lib/ssl.py", "kind": "content", "hunks": 1}]
    # E: reverted upstream (and the revert backported).
    assert f[s["E"]]["state"] == "reverted"
    # F: requested by a trailer rule, not a security fix.
    assert f[s["F"]]["status"] == "new-clean" and f[s["F"]]["security"] is False
    # excluded by policy, with its reason.
    assert f[s["excluded"]]["state"] == "excluded"
    assert "new API" in f[s["excluded"]]["reason"]
    # H: on the stable branch with a trailer; I: by hand without one (patch-id).
    assert f[s["H"]]["state"] == "applied" and "trailer" in f[s["H"]]["reason"]
    assert f[s["I"]]["state"] == "applied" and "patch-id" in f[s["I"]]["reason"]
    # Already in the base tag: through a trailer, and through patch-id only (no -x).
    assert f[s["P"]]["state"] == "in-base"
    assert f[s["noxfix"]]["state"] == "in-base" and "patch-id" in f[s["noxfix"]]["reason"]
    # Reverts are never fixes of their own.
    assert s["E-revert"] not in f
    # Not flagged: never listed.
    assert len(f) == 11


def test_order_is_upstream_order(
    example_template: Example, plan311: dict[str, dict[str, Any]]
) -> None:
    s = example_template.shas
    keys = list(plan311)
    assert keys.index(s["A"]) < keys.index(s["B"]) < keys.index(s["C"]) < keys.index(s["D"])


def test_picks_are_chained(example_template: Example, tmp_path: Path) -> None:
    eng = engine_for(example_template, tmp_path / "state")
    eng.fetch()
    plan = eng.plan(["3.11.2"])
    sp = plan.series[0]
    clean = [pf for pf in sp.fixes if pf.status == "new-clean"]
    assert len(clean) == 4
    repo = eng.cache.repo
    prev = sp.selection.tip_sha
    for pf in clean:
        assert pf.chosen and pf.chosen.result.commit
        c = get_commit(repo, pf.chosen.result.commit)
        assert [str(p) for p in c.parent_ids] == [prev]
        assert c.message.rstrip().endswith(f"(cherry picked from commit {pf.chosen.source.sha})")
        prev = pf.chosen.result.commit
    assert sp.final_tip == prev
    # The chain's final tree holds every clean fix.
    tree = get_commit(repo, prev).tree
    text = bytes(repo[tree["Lib/urllib/parse.py"].id].data).decode()  # type: ignore[attr-defined]
    assert "# ipv6" in text
    eng.close()


def test_plan_changes_nothing_on_the_fork(example: Example, tmp_path: Path) -> None:
    fork = pygit2.Repository(str(example.fork))
    before = {r: str(fork.references[r].target) for r in fork.references}
    eng = engine_for(example, tmp_path / "state")
    eng.fetch()
    eng.plan()
    eng.close()
    fork = pygit2.Repository(str(example.fork))
    assert {r: str(fork.references[r].target) for r in fork.references} == before


def test_warm_plan_reads_the_cache(example_template: Example, tmp_path: Path) -> None:
    state = tmp_path / "state"
    eng = engine_for(example_template, state)
    eng.fetch()
    first = eng.plan().to_json()
    assert eng.index.stats["facts_computed"] > 0
    # Where the time went, split as bench/eol_lines.py prints it (selection = scan + flag).
    parts = ("select", "scan", "flag", "pick", "applicability", "prerequisites")
    assert {k for k in first["stats"] if k.startswith("seconds_")} == {
        f"seconds_{k}" for k in parts
    }
    eng.close()
    eng2 = engine_for(example_template, state)
    second = eng2.plan().to_json()
    assert eng2.index.stats["facts_computed"] == 0
    assert eng2.index.stats["walked"] == 0

    def strip_ms(plan: dict[str, Any]) -> list[Any]:
        for s in plan["series"]:
            for f in s["fixes"]:
                for a in f["attempts"]:
                    a.pop("ms")
        return list(plan["series"])

    assert strip_ms(first) == strip_ms(second)
    eng2.close()


def test_new_upstream_commits_are_walked_incrementally(example: Example, tmp_path: Path) -> None:
    state = tmp_path / "state"
    eng = engine_for(example, state)
    eng.fetch()
    eng.plan()
    eng.close()
    h = History.__new__(History)
    h.path = example.upstream
    h.repo = pygit2.Repository(str(example.upstream))
    h.clock = 1_800_000_000
    h.step = 60
    new = h.commit(
        "main",
        "gh-9000: Escape quotes (#9001)\n\nCVE-2024-0001",
        {"Lib/email/utils.py": "# escaped\n"},
    )
    eng2 = engine_for(example, state)
    eng2.fetch()
    plan = by_key(eng2.plan(["3.11.2"]).to_json(), "3.11.2")
    assert eng2.index.stats["walked"] == 1
    assert plan[new]["status"] == "new-clean"
    eng2.close()
    # The incrementally extended cache gives exactly what a cold run computes.
    fresh = engine_for(example, tmp_path / "fresh")
    fresh.fetch()
    cold = by_key(fresh.plan(["3.11.2"]).to_json(), "3.11.2")
    fresh.close()
    for fixes in (plan, cold):
        for f in fixes.values():
            for a in f["attempts"]:
                a.pop("ms")
    assert plan == cold


@pytest.fixture(params=["git", "pygit2"])
def fetch_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STABLECTL_FETCH", request.param)
    return str(request.param)


def test_upstream_rewrite_is_refused(
    example: Example, tmp_path: Path, fetch_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    eng = engine_for(example, state)
    eng.fetch()
    eng.close()
    up = pygit2.Repository(str(example.upstream))
    main = up.references["refs/heads/main"]
    old = str(main.target)
    parent = str(get_commit(up, old).parent_ids[0])
    main.set_target(pygit2.Oid(hex=parent))
    with pytest.raises(UpstreamRewrittenError) as e:
        engine_for(example, state).fetch()
    assert "main" in str(e.value) and old[:12] in str(e.value)
    # The CLI reports it as one line, exit 1, and keeps refusing on the next run.
    pol = tmp_path / "p.yaml"
    pol.write_text(example.policy_yaml())
    for _ in range(2):
        r = run_cli(capsys, "--state-dir", str(state), "plan", "--policy", str(pol))
        assert r.code == 1
        assert "upstream rewrote branch 'main'" in r.err
        assert "Traceback" not in r.err
    r = run_cli(
        capsys, "--state-dir", str(state), "cache", "accept-rewrite", "--policy", str(pol), "main"
    )
    assert r.code == 0
    r = run_cli(capsys, "--state-dir", str(state), "plan", "--policy", str(pol))
    assert r.code == 0, r.err


def test_moved_base_tag_is_refused(example: Example, tmp_path: Path, fetch_backend: str) -> None:
    state = tmp_path / "state"
    eng = engine_for(example, state)
    eng.fetch()
    up = pygit2.Repository(str(example.upstream))
    up.references.delete("refs/tags/v3.11.2")
    up.references.create("refs/tags/v3.11.2", pygit2.Oid(hex=example.shas["root"]))
    with pytest.raises(UpstreamRewrittenError, match=r"tag v3\.11\.2"):
        engine_for(example, state).fetch()


def test_unreachable_upstream(
    example_template: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        example_template.policy_yaml().replace(
            str(example_template.upstream), str(tmp_path / "nowhere.git")
        )
    )
    r = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "plan", "--policy", str(pol))
    assert r.code == 1
    assert r.err.startswith("stablectl: error: cannot fetch upstream")
    assert len(r.err.strip().splitlines()) == 1


def test_offline_without_cache(
    example_template: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(example_template.policy_yaml())
    r = run_cli(
        capsys, "--state-dir", str(tmp_path / "s"), "plan", "--offline", "--policy", str(pol)
    )
    assert r.code == 1
    assert "no upstream cache" in r.err


def test_corrupt_cache(
    example_template: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state is a cache: one libgit2 cannot open is moved aside and fetched again, with
    a note, and the plan is the same as from a fresh state."""
    pol = tmp_path / "p.yaml"
    pol.write_text(example_template.policy_yaml())
    fresh = run_cli(capsys, "--state-dir", str(tmp_path / "f"), "plan", "--policy", str(pol))
    state = tmp_path / "s"
    cache = state / "cache" / "pyexample.git"
    cache.mkdir(parents=True)
    (cache / "HEAD").write_text("garbage")
    r = run_cli(capsys, "--state-dir", str(state), "plan", "--policy", str(pol))
    assert r.code == 0, r.err
    err = " ".join(r.err.split())
    assert "the git cache could not be opened" in err and "fetched again" in err
    assert r.out == fresh.out
    assert [p.name.split(".corrupt-")[0] for p in cache.parent.glob("*.corrupt-*")] == [
        "pyexample.git"
    ]


def test_missing_object_is_a_per_commit_error(example: Example, tmp_path: Path) -> None:
    """A partial clone without some blobs: the fix that needs them errors, the rest plans."""
    state = tmp_path / "state"
    eng = engine_for(example, state)
    eng.fetch()
    eng.close()
    cache = state / "cache" / "pyexample.git"
    repo = pygit2.Repository(str(cache))
    blob = str(get_commit(repo, example.shas["B"]).tree["Lib/http/client.py"].id)
    # Repack the cache without that blob, as a partial clone would lack it.
    git = ["git", "--git-dir", str(cache)]
    listing = subprocess.run(
        [*git, "rev-list", "--objects", "--all", "--no-object-names"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    keep = "".join(o + "\n" for o in listing if o != blob)
    subprocess.run(
        [*git, "pack-objects", "-q", str(tmp_path / "new")],
        input=keep.encode(),
        check=True,
        capture_output=True,
    )
    for old in (cache / "objects").rglob("*"):
        if old.is_file():
            old.unlink()
    (cache / "objects" / "pack").mkdir(exist_ok=True)
    for new in tmp_path.glob("new-*"):
        shutil.move(str(new), str(cache / "objects" / "pack" / new.name))
    assert blob not in pygit2.Repository(str(cache))
    eng2 = engine_for(example, state)
    plan = by_key(eng2.plan(["3.11.2"]).to_json(), "3.11.2")
    fb = plan[example.shas["B"]]
    assert fb["status"] == "new-error", fb["attempts"]
    assert "missing or unreadable object" in fb["attempts"][0]["error"]
    # Other fixes are still planned.
    assert plan[example.shas["A"]]["status"] == "new-clean"
    eng2.close()


def test_plan_cli_json_and_table(
    example_template: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(example_template.policy_yaml())
    state = str(tmp_path / "s")
    r = run_cli(
        capsys, "--state-dir", state, "plan", "--policy", str(pol), "--json", "--series", "3.11.2"
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["schema"] == "stablectl.plan/1"
    assert [s["name"] for s in data["series"]] == ["3.11.2"]
    s = data["series"][0]
    assert s["branch"] == "3.11.2-stable" and s["branch_exists"] is True
    assert s["base"]["tag"] == "v3.11.2"
    r = run_cli(capsys, "--state-dir", state, "plan", "--policy", str(pol), "--offline")
    assert r.code == 0
    assert "3.12.1-stable (not created yet)" in r.out
    assert "conflict" in r.out and "Lib/ssl.py" in r.out
    r = run_cli(capsys, "--state-dir", state, "plan", "--policy", str(pol), "--series", "9.9")
    assert r.code == 2 and "unknown series '9.9'" in r.err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "--help")
    assert r.code == 0 and "Examples:" in r.out and "Exit codes" in r.out
    r = run_cli(capsys, "plan", "--help")
    assert r.code == 0 and "--json" in r.out
    r = run_cli(capsys, "plan", "--bogus")
    assert r.code == 2


def test_git_error_type() -> None:
    assert GitError("x").exit_code == 1


def test_commits_rule_flags_backports_of_a_listed_original_not_in_the_repo(
    tmp_path: Path,
) -> None:
    """A listed SHA names a fix even when the original is absent: a commit whose trailer
    names it is flagged and picked (systemd-stable's trailers often name such commits)."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"a.txt": "1\n2\n3\n"})
    h.tag("v1", base)
    h.branch("v2-stable", base)
    ghost = "1234567890abcdef1234567890abcdef12345678"
    bp = h.commit(
        "v2-stable",
        f"fix a\n\n(cherry picked from commit {ghost})\n",
        {"a.txt": "1\n2\nthree\n"},
    )
    line = Line.of(h, tmp_path, "v1-stable", base)
    policy = line.policy(
        'name: "1", base: v1, branch: v1-stable, sources: [main, v2-stable], since: 2000-01-01',
        f'  - {{name: listed, commits: ["{ghost[:12]}"]}}\n',
        project="ghost",
    )
    fixes = by_key(line.plan(policy).to_json(), "1")
    assert list(fixes) == [ghost]
    f = fixes[ghost]
    assert f["original"] is None
    assert f["flags"][0]["reason"] == f"backport of listed {ghost[:10]}"
    assert f["status"] == "new-clean" and f["source"]["commit"] == bp


def test_release_commit_deleting_security_news_is_not_a_fix(tmp_path: Path) -> None:
    """CPython's release commits ("Python 3.12.0a1") consolidate NEWS entries: they delete
    Misc/NEWS.d/next/Security/*.rst. Path rules match files a commit adds or changes, so such a
    commit is not flagged (found on real CPython history: bench/real_history.py)."""
    h = History(tmp_path / "up.git")
    base = h.commit("main", "base", {"Lib/a.py": "1\n"})
    h.tag("v1", base)
    fix = h.commit(
        "main",
        "gh-1: fix a",
        {"Lib/a.py": "2\n", "Misc/NEWS.d/next/Security/2023-01-01.gh-issue-1.abc.rst": "Fix.\n"},
    )
    h.commit(
        "main",
        "Python 3.12.0a1",
        {
            "Misc/NEWS.d/next/Security/2023-01-01.gh-issue-1.abc.rst": None,
            "Misc/NEWS.d/3.12.0a1.rst": "Security: Fix.\n",
        },
    )
    line = Line.of(h, tmp_path, "v1-stable", base)
    policy = line.policy(
        'name: "1", base: v1, branch: v1-stable, sources: [main], since: 2000-01-01',
        '  - {name: security-news, paths: ["Misc/NEWS.d/next/Security/*.rst"]}\n',
        project="rel",
    )
    fixes = by_key(line.plan(policy).to_json(), "1")
    assert list(fixes) == [fix]
