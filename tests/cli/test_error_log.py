"""An internal error (a bug) exits 3 with one line naming its log; the log holds the version,
the command line with secrets redacted, and the traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablectl import __version__
from stablectl.cli import main as cli_main
from stablectl.cli import policy_cmd
from stablectl.cli.error_log import redacted_argv
from stablectl.errors import register_secret


def test_an_internal_error_exits_3_and_names_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("boom in the policy loader")

    monkeypatch.setenv("STABLECTL_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(policy_cmd, "load_policy", broken)
    policy = tmp_path / "p.yaml"
    policy.write_text("project: x\n")
    register_secret("ghp_canary_in_argv_0001")
    with pytest.raises(SystemExit) as e:
        cli_main.main(["policy", "check", str(policy), "--no-repo", "ghp_canary_in_argv_0001"])
    # click rejects the extra argument before the command runs: a usage error, exit 2.
    assert e.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli_main.main(["policy", "check", str(policy), "--no-repo"])
    assert e.value.code == 3
    err = capsys.readouterr().err.strip()
    log = tmp_path / "state" / "stablectl.log"
    assert err.count("\n") == 0 and "internal error" in err and str(log) in err
    text = log.read_text()
    assert f"stablectl {__version__}" in text
    assert f"command: stablectl policy check {policy} --no-repo" in text
    assert "Traceback (most recent call last)" in text and "boom in the policy loader" in text


def test_the_logged_command_line_hides_secrets() -> None:
    register_secret("ghp_registered_secret_42")
    argv = [
        "sync",
        "--token",
        "abc",
        "--api-key=xyz",
        "https://user:pass@example.com/x.git",
        "ghp_registered_secret_42",
    ]
    assert redacted_argv(argv) == [
        "sync",
        "--token",
        "***",
        "--api-key=***",
        "https://***@example.com/x.git",
        "***",
    ]
