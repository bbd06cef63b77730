"""What verify remembers and replays: a kept release log (`releases.json`) against the
mirror (a rollback or a freeze of the newest release shows only there), and this machine's
record of what it verified before (`STATE/verify-known.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pygit2

from stablectl.controller.verify.context import Audit
from stablectl.controller.verify.report import VerifyReport
from stablectl.gitops.cache import FORK_TAGS
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Series

KNOWN_STATE = "verify-known.json"


def replay_log(a: Audit, log: JSONDoc, series: list[Series]) -> None:
    """Replay a published release log (`releases.json`, kept by the downstream or fetched from
    the mirror's feed) against the mirror: every release it lists must still be there, with
    the same tag object and commit, numbered in order, each following the one before. This is
    what catches a rollback (the newest release and its commit removed), which a first run
    cannot see from the mirror alone."""
    if log.get("schema") != "stablectl.releases/1":
        a.find("error", "-", "release log", f"not a stablectl release log: {log.get('schema')}")
        return
    wanted = {s.name: s for s in series}
    last: dict[str, tuple[int, str | None]] = {}
    for entry in log.get("releases", []):
        s = wanted.get(str(entry.get("series")))
        if s is None:
            continue
        tag = str(entry.get("tag"))
        n = int(str(entry.get("version", "")).rsplit(".", 1)[-1] or 0)
        prev_n, prev_commit = last.get(s.name, (0, None))
        if n != prev_n + 1:
            a.find(
                "error",
                s.name,
                tag,
                f"the release log jumps from release {prev_n} to {n}: a gap",
            )
        previous = (entry.get("previous") or {}).get("commit")
        if prev_commit is not None and previous != prev_commit:
            a.find(
                "error",
                s.name,
                tag,
                f"the release log forks: it follows {previous}, the release before is "
                f"{prev_commit}",
            )
        last[s.name] = (n, entry.get("commit"))
        ref = a.repo.references.get(f"{FORK_TAGS}{tag}")
        if ref is None:
            a.find(
                "error",
                s.name,
                tag,
                f"the release log lists {tag} (commit {entry.get('commit')}), which the mirror "
                "no longer has: deleted, or the fork was rewound",
            )
            continue
        if str(ref.target) != entry.get("tag_object"):
            a.find(
                "error",
                s.name,
                tag,
                f"MOVED: the release log has tag object {entry.get('tag_object')}, the mirror "
                f"{ref.target}",
            )
        commit = str(a.repo[ref.target].peel(pygit2.Commit).id)
        if commit != entry.get("commit"):
            a.find(
                "error",
                s.name,
                tag,
                f"the release log has commit {entry.get('commit')}, the mirror's tag {commit}",
            )
    a.report.log_entries = sum(1 for e in log.get("releases", []) if e.get("series") in wanted)


def known_state_path(state_dir: Path) -> Path:
    return state_dir / KNOWN_STATE


def load_known(state_dir: Path, remote: str) -> dict[str, str]:
    path = known_state_path(state_dir)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get(remote, {}))


def save_known(state_dir: Path, remote: str, report: VerifyReport, repo: pygit2.Repository) -> None:
    """Record what was verified (only after a clean verify): the next run compares with it."""
    path = known_state_path(state_dir)
    data = json.loads(path.read_text()) if path.is_file() else {}
    mine = dict(data.get(remote, {}))
    for a in report.audits:
        if a.tip:
            mine[f"branch:{a.branch}"] = a.tip
        for r in a.releases:
            ref = repo.references.get(f"{FORK_TAGS}{r.tag}")
            if ref is not None:
                mine[f"tag:{r.tag}"] = str(ref.target)
    data[remote] = mine
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
