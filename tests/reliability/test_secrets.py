"""A canary token runs a whole release cycle on the GitHub test server, with `--debug`, JSON
output, a 502 storm that ends in an error, and every read-only command; then every byte the run
left anywhere is searched for it: stdout and stderr, every file under the work directory (state,
cache, git config, ETag cache, logs, release artifacts, the feed), and everything the forge
holds (PR titles and bodies, comments, release notes, asset bytes, request paths)."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.controller.sync.test_release import approve_backports, approve_release
from tests.controller.sync.test_sync import make_env
from tests.forges import BOT
from tests.ghserver.server import FakeGitHub


def test_a_canary_token_appears_nowhere(tmp_path: Path, fake_github: FakeGitHub) -> None:
    e = make_env("github", tmp_path, fake_github, series="3.11.2", releases=True)
    canary = "ghp_CANARY" + secrets.token_hex(16)
    fake_github.add_token(canary, BOT)
    env = dict(e.env(), STABLE_GH_TOKEN=canary)
    outputs: list[str] = []

    def run(*args: str, ok: bool = True) -> None:
        r = e.cli(*args, env=env)
        outputs.extend([r.stdout, r.stderr])
        if ok:
            assert r.returncode == 0, r.stderr[-2000:]

    run("--debug", "sync", "--json")
    approve_backports(e)
    run("--debug", "sync")
    approve_release(e)
    run("--debug", "sync", "--json")
    assert e.new_forge().get_release("v3.11.2.1") is not None  # the release went out
    run("prs", "--json")
    run("plan", "--json")
    run("status", "--json")
    run("feed", "--out", str(tmp_path / "site"))
    run("verify", "--json")
    fake_github.fail(50, 502)  # a storm: the run ends with an error, --debug traceback included
    run("--debug", "sync", "--json", ok=False)
    fake_github.faults.clear()

    needle = canary.encode()
    assert all(canary not in o for o in outputs)
    leaked = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]
    assert leaked == []
    st = fake_github.repos
    texts: list[str] = []
    for repo in st.values():
        texts += [f"{p.title}\n{p.body}" for p in repo.prs.values()]
        texts += [str(c.get("body", "")) for c in repo.comments]
        texts += [f"{r.get('name')}\n{r.get('body')}" for r in repo.releases.values()]
        for assets in repo.assets.values():
            assert all(needle not in bytes(a["data"]) for a in assets)
    texts += [path for _, path, _ in fake_github.log]
    assert texts and all(canary not in t for t in texts)
    # Not vacuous: the token authenticated hundreds of requests, and the storm's error and
    # --debug traceback were printed (and searched).
    assert len(fake_github.log) > 50
    assert "Traceback" in outputs[-1] and "502" in outputs[-1]
