"""Issue 18: the generated workflows run under a real Actions runner (act, the host as runner,
no network). `stable-tests.yml` builds and tests a small C + Python upstream's backport heads
and its `report` job reports to the GitHub test server; `stablectl.yml` runs sync on the
schedule, by hand and on a maintainer's comment, with its state kept between runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from stablectl.controller.init import commit_files
from stablectl.controller.workflows import POLICY_IN_FORK, render_workflows
from stablectl.forge.github import GitHubForge
from stablectl.policy import Policy, load_policy_text
from tests.act.runner import Act, act_usable, control_checkout
from tests.controller.sync.test_sync import BOT, FORK_SLUG, TOKENS, SyncEnv, make_env
from tests.ghserver.server import FakeGitHub

pytestmark = pytest.mark.skipif(act_usable() is not None, reason=str(act_usable()))

SIG = pygit2.Signature("Upstream", "up@example.invalid", 1_700_000_000, 0)

ADDER_C = b"""#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    printf("%ld\\n", atol(argv[1]) + atol(argv[2]));
    return 0;
}
"""

UPSTREAM: dict[str, bytes] = {
    # CPython's build interface, in miniature: ./configure, make, ./python -m test.
    "configure": b'#!/bin/sh\necho "configured with: $*" > config.log\n',
    "Makefile": (
        b"all: adder python\n\n"
        b"adder: adder.c\n\tcc -O2 -o adder adder.c\n\n"
        b"python:\n\tprintf '#!/bin/sh\\nexec python3 \"$$@\"\\n' > python && chmod +x python\n"
    ),
    "adder.c": ADDER_C,
    "test/__init__.py": b"",
    "test/__main__.py": (
        b"import sys, unittest\n"
        b"suite = unittest.defaultTestLoader.discover('test', top_level_dir='.')\n"
        b"ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()\n"
        b"sys.exit(0 if ok else 2)\n"
    ),
    "test/test_adder.py": (
        b"import subprocess, unittest\n\n\n"
        b"class Adder(unittest.TestCase):\n"
        b"    def test_adds(self):\n"
        b"        out = subprocess.run(['./adder', '2', '3'], capture_output=True, text=True)\n"
        b"        self.assertEqual(out.stdout.strip(), '5')\n"
    ),
    ".github/workflows/posix-deps-apt.sh": b"#!/bin/sh\necho 'build dependencies: none'\n",
}
EXECUTABLE = {"configure", ".github/workflows/posix-deps-apt.sh"}


def _tree(repo: pygit2.Repository, files: dict[str, bytes]) -> pygit2.Oid:
    index = pygit2.Index()
    for path, data in files.items():
        mode = pygit2.enums.FileMode.BLOB_EXECUTABLE if path in EXECUTABLE else None
        entry = pygit2.IndexEntry(path, repo.create_blob(data), mode or pygit2.enums.FileMode.BLOB)
        index.add(entry)
    return index.write_tree(repo)


def serve_fork(fake: FakeGitHub, fork: Path, policy: Policy) -> GitHubForge:
    """The fork's control branch `main` holding the workflows rendered from `policy`, served
    by the test server; the bot's forge client on it."""
    repo = pygit2.Repository(str(fork))
    files = {r.path: r.text.encode() for r in render_workflows(policy, "policy.yaml")}
    main = commit_files(repo, None, files=files, message="workflows\n", who=SIG)
    assert main is not None
    repo.references.create("refs/heads/main", pygit2.Oid(hex=main), force=True)
    fake.add_token(TOKENS[BOT], BOT)
    fake.add_repo(FORK_SLUG, fork, writers={BOT})
    return GitHubForge(
        api_url=fake.base, fork=FORK_SLUG, upstream=None, token=TOKENS[BOT], state_dir=None
    )


def small_fork(tmp_path: Path, fake: FakeGitHub) -> tuple[Path, dict[str, str]]:
    """A fork of the small upstream: `1-stable`, a good and a broken backport head (each with
    a PR on the test server), and the control branch `main` with the rendered workflows."""
    fork = tmp_path / "fork.git"
    repo = pygit2.init_repository(str(fork), bare=True)
    base = repo.create_commit("refs/heads/1-stable", SIG, SIG, "v1", _tree(repo, UPSTREAM), [])
    heads = {}
    for name, code in (("good", ADDER_C), ("broken", ADDER_C.replace(b" + atol", b" - atol"))):
        files = {**UPSTREAM, "adder.c": code + b"/* a backport */\n"}
        heads[name] = str(
            repo.create_commit(
                f"refs/heads/stablectl/1/{name}",
                SIG,
                SIG,
                f"gh-1: {name} backport\n\n(cherry picked from commit {'1' * 40})",
                _tree(repo, files),
                [base],
            )
        )
    policy = load_policy_text(
        f"""project: adder
upstream: {{git: {tmp_path / "none.git"}}}
fork: {{git: {fork}, forge: {FORK_SLUG}}}
forge: {{kind: github, api_url: "{fake.base}"}}
series: [{{name: "1", base: v1, sources: [main]}}]
flags: [{{name: s, paths: [x]}}]
"""
    )
    forge = serve_fork(fake, fork, policy)
    for name in list(heads):
        pr = forge.open_pr(f"stablectl/1/{name}", "1-stable", f"[1-stable] {name}", "body")
        heads[f"pr-{name}"] = str(pr.number)
    return fork, heads


def test_stable_tests_builds_tests_and_reports_a_backport(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    """The `test` job configures, builds and runs the tests of the PR head the dispatch names;
    the `report` job posts the commit status, and for the broken head the comment (with the
    run's link) and the `tests-failed` label, to the test server."""
    fork, heads = small_fork(tmp_path, fake_github)
    work = control_checkout(fork, tmp_path / "control", FORK_SLUG)
    act = Act(tmp_path / "act", fork, fake_github.base)
    results = {}
    for name in ("good", "broken"):
        run = act.run(
            work,
            "workflow_dispatch",
            {"inputs": {"sha": heads[name], "pr": heads[f"pr-{name}"]}},
            workflow="stable-tests.yml",
            token=TOKENS[BOT],
        )
        results[name] = run
    good, broken = results["good"], results["broken"]
    assert good.code == 0, good.output[-4000:]
    assert "Ran 1 test" in good.output and "OK" in good.output
    assert broken.code != 0  # the test job fails; the report job still runs
    assert "AssertionError: '-1' != '5'" in broken.output, broken.output[-4000:]
    st = fake_github.repos[FORK_SLUG]
    assert [s["state"] for s in st.statuses[heads["good"]]] == ["success"]
    assert [s["state"] for s in st.statuses[heads["broken"]]] == ["failure"]
    assert st.statuses[heads["good"]][0]["context"] == "stable-tests"
    assert "tests-failed" in st.prs[int(heads["pr-broken"])].labels
    assert "tests-failed" not in st.prs[int(heads["pr-good"])].labels
    comments = [c["body"] for c in st.comments if c["number"] == int(heads["pr-broken"])]
    assert any(f"The test suite failed on {heads['broken']}" in c for c in comments), comments
    assert not any(c["number"] == int(heads["pr-good"]) for c in st.comments)
    built = json.dumps([c["path"] for c in broken.gh_calls])
    assert "statuses" in built and "labels" in built


def _controller(tmp_path: Path, fake: FakeGitHub) -> tuple[SyncEnv, Act, Path]:
    """The example mirror on the test server, its control branch holding the policy (at the
    path the workflow reads) and the workflows rendered from it, as `stablectl init` leaves it."""
    env = make_env("github", tmp_path / "env", fake, series="3.11.2")
    text = env.policy_path.read_text()
    policy = load_policy_text(text)
    repo = pygit2.Repository(str(env.example.fork))
    files = {r.path: r.text.encode() for r in render_workflows(policy, "policy.yaml")}
    files[POLICY_IN_FORK] = text.encode()
    parent = repo.references["refs/heads/main"].target
    main = commit_files(repo, str(parent), files=files, message="control\n", who=SIG)
    assert main is not None
    repo.references.create("refs/heads/main", pygit2.Oid(hex=main), force=True)
    work = control_checkout(env.example.fork, tmp_path / "control", FORK_SLUG)
    return env, Act(tmp_path / "act", env.example.fork, fake.base), work


def test_the_controller_syncs_on_schedule_dispatch_and_comment(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    """stablectl.yml's sync job under act: on `schedule` it opens the backport PRs, dispatches
    stable-tests for each clean head and marks it pending, exactly what an in-process sync
    does (one right after finds nothing to do); its state is saved and the next run
    (`workflow_dispatch`) restores it and is quiet; a maintainer's `/stablectl skip` comment
    (`issue_comment`) is obeyed; a comment without a command does not start the job."""
    env, act, work = _controller(tmp_path, fake_github)
    first = act.run(
        work, "schedule", {"schedule": "17 * * * *"}, workflow="stablectl.yml", token=TOKENS[BOT]
    )
    assert first.code == 0, first.output[-5000:]
    assert "no cache for stablectl-state-pyexample-" in first.output
    prs = env.open_prs()
    clean = [p for p in prs if not p.draft]
    assert len(prs) >= 5 and clean
    dispatched = {d["inputs"]["sha"] for d in fake_github.dispatches}
    assert {p.head_sha for p in clean} <= dispatched
    st = fake_github.repos[FORK_SLUG]
    assert all(st.statuses[p.head_sha][-1]["state"] == "pending" for p in clean)
    saved = sorted(p.name for p in act.cache.iterdir())
    assert len(saved) == 1 and saved[0].startswith("stablectl-state-pyexample-")
    assert env.sync().api["writes"] == 0  # act's run did all an in-process sync would
    second = act.run(work, "workflow_dispatch", {}, workflow="stablectl.yml", token=TOKENS[BOT])
    assert second.code == 0, second.output[-5000:]
    assert f"restored {saved[0]}" in second.output
    assert "nothing to do" in second.output
    target = clean[0]
    env.comment(target.number, "/stablectl skip", "maint")
    comment = {
        "action": "created",
        "comment": {"body": "/stablectl skip", "user": {"login": "maint"}},
        "issue": {"number": target.number, "pull_request": {}},
    }
    third = act.run(work, "issue_comment", comment, workflow="stablectl.yml", token=TOKENS[BOT])
    assert third.code == 0, third.output[-5000:]
    assert env.new_forge().get_pr(target.number).state == "closed"
    chatter = {**comment, "comment": {"body": "thanks!", "user": {"login": "maint"}}}
    skipped = act.run(work, "issue_comment", chatter, workflow="stablectl.yml", token=TOKENS[BOT])
    assert skipped.code == 0 and "stablectl sync --policy" not in skipped.output


def test_a_missing_token_is_named_without_a_traceback(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    _env, act, work = _controller(tmp_path, fake_github)
    run = act.run(work, "workflow_dispatch", {}, workflow="stablectl.yml", token="")
    assert run.code != 0
    assert "no GitHub token: set $STABLE_GH_TOKEN" in run.output, run.output[-3000:]
    assert "Traceback" not in run.output


DEBIAN = Path(os.environ.get("STABLECTL_DEBIAN_PYTHON", "/tmp/deb"))
ORIG = DEBIAN / "python3.11_3.11.2.orig.tar.gz"
FIX = DEBIAN / "debian" / "patches" / "CVE-2023-24329-strip-control-chars-urlsplit.patch"


@pytest.mark.slow
@pytest.mark.skipif(
    not (ORIG.is_file() and FIX.is_file()),
    reason="needs Debian's python3.11 source package: apt-get source --download-only "
    "python3.11 into $STABLECTL_DEBIAN_PYTHON (default /tmp/deb)",
)
def test_stable_tests_builds_cpython_and_tests_a_real_backport(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    """On demand (STABLECTL_SLOW=1): CPython 3.11.2 from Debian's source package with the
    CVE-2023-24329 backport from Debian's queue as the PR head; stable-tests.yml configures
    and builds CPython for real and runs the test module the fix touches (test_urlparse)."""
    src = tmp_path / "cpython"
    src.mkdir()
    subprocess.run(["tar", "-xzf", str(ORIG), "-C", str(src), "--strip-components=1"], check=True)
    # The runner here has the build dependencies; the script's apt-get would need the network.
    deps = src / ".github" / "workflows" / "posix-deps-apt.sh"
    deps.parent.mkdir(parents=True, exist_ok=True)
    deps.write_text("#!/bin/sh\necho 'build dependencies: preinstalled on this runner'\n")
    deps.chmod(0o755)
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "3.11.2-stable"], check=True)
    subprocess.run([*git, "add", "-A", "-f"], check=True)
    subprocess.run([*git, "commit", "-qm", "Python 3.11.2"], check=True)
    subprocess.run([*git, "apply", "--index", str(FIX)], check=True)
    subprocess.run(
        [
            *git,
            "commit",
            "-qm",
            "[3.11] gh-102153: Start stripping C0 control and space chars "
            "in urlsplit (GH-102508) (#104575)\n\n(cherry picked from commit "
            "610cc0ab1b760b2abaac92bd256b96191c46b941)",
        ],
        check=True,
    )
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    fork = tmp_path / "fork.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(fork)], check=True)
    subprocess.run(
        ["git", "--git-dir", str(fork), "branch", "stablectl/3.11.2/610cc0ab1b76", head.strip()],
        check=True,
    )
    subprocess.run(
        ["git", "--git-dir", str(fork), "branch", "-f", "3.11.2-stable", f"{head.strip()}~1"],
        check=True,
    )
    policy = load_policy_text(
        f"""project: python
upstream: {{git: {tmp_path / "none.git"}}}
fork: {{git: {fork}, forge: {FORK_SLUG}}}
forge: {{kind: github, api_url: "{fake_github.base}"}}
series: [{{name: "3.11.2", base: v3.11.2, sources: ["3.11"]}}]
flags: [{{name: s, paths: [x]}}]
ci: {{test_args: ["-W", "test_urlparse"]}}
"""
    )
    forge = serve_fork(fake_github, fork, policy)
    pr = forge.open_pr("stablectl/3.11.2/610cc0ab1b76", "3.11.2-stable", "[3.11.2-stable] x", "")
    work = control_checkout(fork, tmp_path / "control", FORK_SLUG)
    act = Act(tmp_path / "act", fork, fake_github.base)
    run = act.run(
        work,
        "workflow_dispatch",
        {"inputs": {"sha": head.strip(), "pr": str(pr.number)}},
        workflow="stable-tests.yml",
        token=TOKENS[BOT],
    )
    assert run.code == 0, run.output[-6000:]
    (tmp_path / "act-output.txt").write_text(run.output)
    assert "Tests result: SUCCESS" in run.output, run.output[-6000:]
    statuses = fake_github.repos[FORK_SLUG].statuses[head.strip()]
    assert [s["state"] for s in statuses] == ["success"]
