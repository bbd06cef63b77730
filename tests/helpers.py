"""Helpers shared by tests: run the CLI in-process and capture what it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stablectl.cli.main import main
from stablectl.controller.plan import Plan
from stablectl.gitops.history import History


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    cap = capsys.readouterr()
    return Run(code, cap.out, cap.err)


def plan_line(
    tmp_path: Path,
    upstream: History,
    name: str,
    branch: str,
    extra: str = "",
    *,
    extra_series: str = "",
    since: str = "2000-01-01",
) -> Plan:
    """Plan one series `name` (base tag `v<name>`, sources [branch, main]) over a built
    upstream, flagging security NEWS entries, with a fork at nothing but the tags; `extra`
    is more policy YAML (after the flag rules), `extra_series` more keys of the series."""
    from stablectl.controller.workspace import Workspace
    from stablectl.policy import load_policy

    more = f", {extra_series}" if extra_series else ""
    tmp_path.mkdir(parents=True, exist_ok=True)
    fork = History(tmp_path / "fork.git")
    fork.repo.remotes.create("u", str(upstream.path)).fetch(["+refs/tags/*:refs/tags/*"])
    policy = tmp_path / "p.yaml"
    policy.write_text(f"""\
project: t
upstream: {{git: {upstream.path}, main: main}}
fork: {{git: {fork.path}}}
series:
  - {{name: "{name}", base: v{name}, sources: ["{branch}", main], since: {since}{more}}}
flags:
  - {{name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}}
{extra}""")
    engine = Workspace(load_policy(policy), tmp_path / "state", committer_time=1_700_000_000)
    try:
        engine.fetch()
        return engine.plan()
    finally:
        engine.close()
