from __future__ import annotations

from pathlib import Path

import pytest

from stablectl.cli.sync_cmd import write_actions_summary
from stablectl.controller.plan import Plan
from stablectl.controller.sync.actions import Findings, SyncReport


def test_only_notices_worth_a_look_become_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PR waiting for its approvals, or a fix a maintainer skipped, is the normal course of
    a run; a PR verify would reject is a warning in the Actions run, though its text also says
    "not merged" (it was once filtered by matching that string)."""
    findings = Findings()
    findings.notice("3.11.2: PR #4 not merged: 1 of 2 approvals", routine=True)
    findings.notice("3.11.2: 0123456789 skipped by a maintainer", routine=True)
    rejected = "3.11.2: PR #5 not merged: stablectl verify would reject it: not verbatim"
    findings.notice(rejected)
    report = SyncReport(
        plan=Plan("p", [], [], {}),
        actions=[],
        applied=[],
        problems=[],
        notices=findings.notices,
        prs={},
        api={},
        dry_run=False,
        routine=findings.routine,
    )
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    write_actions_summary(report)
    warnings = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("::warning")]
    assert warnings == [f"::warning title=stablectl sync::{rejected}"]
    assert report.to_json()["warnings"] == [rejected]
