"""Helpers shared by tests: run the CLI in-process and capture what it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stablectl.cli.main import main
from stablectl.controller.plan import Plan
from stablectl.controller.workspace import Workspace
from stablectl.gitops.history import History
from stablectl.policy import Policy, load_policy, load_policy_text


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


SECURITY_NEWS = (
    '  - {name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}\n'
)


@dataclass
class Line:
    """A stable line to plan under `root`: an upstream, a fork (`root/fork.git`) holding
    nothing but the upstream's tags and, when asked, its stable branch, and a policy over
    the two."""

    upstream: History
    fork: History
    root: Path

    @classmethod
    def of(cls, upstream: History, root: Path, branch: str = "", at: str = "") -> Line:
        """The fork of `upstream` at its tags, with `branch` at `at` when given."""
        root.mkdir(parents=True, exist_ok=True)
        fork = History(root / "fork.git")
        fork.repo.remotes.create("u", str(upstream.path)).fetch(["+refs/tags/*:refs/tags/*"])
        if branch:
            fork.branch(branch, at)
        return cls(upstream, fork, root)

    def policy_yaml(
        self,
        series: str,
        flags: str = SECURITY_NEWS,
        *,
        project: str = "t",
        upstream: str = "main: main",
        more: str = "",
    ) -> str:
        """The policy: one series (`series`, the keys of its mapping), the `flags` list
        (YAML list items; by default security NEWS entries), then `more` top-level YAML.
        `upstream` is more keys of the upstream (after its git)."""
        return (
            f"project: {project}\n"
            f"upstream: {{git: {self.upstream.path}, {upstream}}}\n"
            f"fork: {{git: {self.fork.path}}}\n"
            f"series:\n  - {{{series}}}\n"
            f"flags:\n{flags}{more}"
        )

    def policy(self, series: str, flags: str = SECURITY_NEWS, **kw: str) -> Policy:
        return load_policy_text(self.policy_yaml(series, flags, **kw))

    def write_policy(self, series: str, flags: str = SECURITY_NEWS, **kw: str) -> Path:
        """The policy written to `root/p.yaml`, for code that reads it from a file."""
        path = self.root / "p.yaml"
        path.write_text(self.policy_yaml(series, flags, **kw))
        return path

    def plan(self, policy: Policy, committer_time: int = 1) -> Plan:
        """Fetch and plan with `policy`, its state in `root/state`."""
        engine = Workspace(policy, self.root / "state", committer_time=committer_time)
        try:
            engine.fetch()
            return engine.plan()
        finally:
            engine.close()


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
    is more policy YAML (after the flag rules), `extra_series` more keys of the series. The
    policy stays in `tmp_path/p.yaml`, the state in `tmp_path/state`."""
    more = f", {extra_series}" if extra_series else ""
    line = Line.of(upstream, tmp_path)
    policy = line.write_policy(
        f'name: "{name}", base: v{name}, sources: ["{branch}", main], since: {since}{more}',
        more=extra,
    )
    return line.plan(load_policy(policy), committer_time=1_700_000_000)


def minimal_policy(more: str = "", *, series: str = "1", sources: str = "[main]") -> Policy:
    """A policy naming no real repository, for code that reads its settings only (gates,
    tags, templates, the applier): one series `series` (base `v<series>`) taking `sources`,
    one path rule; `more` is more top-level YAML."""
    return load_policy_text(
        "project: t\nupstream: {git: /u}\nfork: {git: /f}\n"
        f"series: [{{name: '{series}', base: v{series}, sources: {sources}}}]\n"
        "flags: [{name: security-news, paths: ['Misc/NEWS.d/next/Security/*.rst']}]\n" + more,
        "p.yaml",
    )
