"""What verify remembers and checks again: a kept release log (`releases.json`) against the
mirror (a rollback or a freeze of the newest release shows only there), and this machine's
record of what it verified before (`STATE/verify-known.json`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from stablectl.controller.verify.context import Audit
from stablectl.controller.verify.report import VerifyReport
from stablectl.controller.verify.tags import signer_of
from stablectl.gitops.cache import FORK_TAGS
from stablectl.gitops.signing import detached_signatures
from stablectl.jsondoc import JSONDoc
from stablectl.policy import Series

KNOWN_STATE = "verify-known.json"


@dataclass(frozen=True)
class ReleaseLog:
    """A kept `releases.json`: its bytes, its detached signatures (`releases.json.sig`/`.asc`
    beside it, as sync writes them with the release key), and how old it may be."""

    path: Path
    data: JSONDoc
    payload: bytes
    signatures: list[tuple[str, bytes]] = field(default_factory=list)
    max_age_hours: float | None = None

    @classmethod
    def read(cls, path: Path, data: JSONDoc, max_age_hours: float | None) -> ReleaseLog:
        sigs = [
            (str(path.with_name(n)), path.with_name(n).read_bytes())
            for n in detached_signatures(path.name)
            if path.with_name(n).is_file()
        ]
        return cls(path, data, path.read_bytes(), sigs, max_age_hours)


def check_log(a: Audit, log: ReleaseLog, now: dt.datetime | None = None) -> None:
    """The log is signed by a pinned key (when keys are pinned or required: an old or forged
    log served by the mirror then fails) and, with a maximum age, fresh: sync signs the log at
    every run, so a log older than its schedule allows is a frozen or replayed one."""
    where = str(log.path)
    signer_of(
        a.trust,
        log.payload,
        log.signatures,
        "file",
        lambda lv, w, t: a.find(lv, "-", w, t),
        where,
    )
    if log.max_age_hours is None:
        return
    try:
        generated = dt.datetime.fromisoformat(str(log.data.get("generated")).replace("Z", "+00:00"))
    except ValueError:
        a.find("error", "-", where, "the release log has no valid `generated` time")
        return
    age = ((now or dt.datetime.now(dt.UTC)) - generated).total_seconds() / 3600
    if age > log.max_age_hours:
        a.find(
            "error",
            "-",
            where,
            f"the release log was generated {age:.0f} hours ago (at most {log.max_age_hours:g} "
            "allowed): a frozen mirror, or an old log replayed",
        )


def check_release_log(a: Audit, log: JSONDoc, series: list[Series]) -> None:
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
        _still_on_the_mirror(a, s, tag, entry)
    a.report.log_entries = sum(1 for e in log.get("releases", []) if e.get("series") in wanted)


def _still_on_the_mirror(a: Audit, s: Series, tag: str, entry: JSONDoc) -> None:
    """A release the log lists: its tag on the mirror, naming the same tag object and commit."""
    ref = a.repo.references.get(f"{FORK_TAGS}{tag}")
    if ref is None:
        a.find(
            "error",
            s.name,
            tag,
            f"the release log lists {tag} (commit {entry.get('commit')}), which the mirror "
            "no longer has: deleted, or the fork was rewound",
        )
        return
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
