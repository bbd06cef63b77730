"""What a pick gives: its outcome (clean, empty, conflict, error), the merged tree and commit,
the lever that made it, the conflicting files, and the form the pick memo keeps it in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["clean", "empty", "conflict", "error"]
Lever = Literal["paths", "libgit2", "ort"]


@dataclass(frozen=True)
class ConflictFile:
    path: str
    kind: str  # "content", "modify/delete", "add/add", "delete/modify", "rename", ...
    hunks: int


@dataclass
class PickResult:
    """The outcome of picking one source commit onto a tip."""

    source: str
    onto: str
    outcome: Outcome
    tree: str | None = None  # the merged tree (clean/empty)
    commit: str | None = None  # the new commit (clean only)
    lever: Lever | None = None
    conflicts: list[ConflictFile] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    # git's merge of a conflicting pick, conflict markers left in (when ort ran): what a
    # resolution is compared with (gitops.provenance)
    marked_tree: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("clean", "empty")


def reported_by_ort(first: PickResult, ort: PickResult) -> PickResult:
    """A conflict as git's merge (the best method) sees it: the files ort leaves conflicting,
    with the detail (kind, hunks) the first method gave for them. A file the first method
    refused (an ISO-8859-1 file libgit2 will not merge: "encoding") that ort merged is not a
    conflict."""
    if first.outcome != "conflict":
        return first
    mine = {c.path: c for c in first.conflicts}
    conflicts = [mine.get(c.path, c) for c in ort.conflicts]
    return PickResult(
        first.source,
        first.onto,
        "conflict",
        lever="ort",
        conflicts=conflicts,
        marked_tree=ort.marked_tree or first.marked_tree,
    )


def result_to_json(r: PickResult) -> dict[str, Any]:
    """A pick as the memo keeps it."""
    return {
        "source": r.source,
        "onto": r.onto,
        "outcome": r.outcome,
        "tree": r.tree,
        "commit": r.commit,
        "lever": r.lever,
        "conflicts": [[c.path, c.kind, c.hunks] for c in r.conflicts],
        "error": r.error,
        "marked_tree": r.marked_tree,
    }


def result_from_json(d: Any) -> PickResult | None:
    """A pick the memo kept (None: nothing, or not a pick)."""
    if not isinstance(d, dict):
        return None
    return PickResult(
        d["source"],
        d["onto"],
        d["outcome"],
        tree=d["tree"],
        commit=d["commit"],
        lever=d["lever"],
        conflicts=[ConflictFile(p, k, h) for p, k, h in d["conflicts"]],
        error=d["error"],
        marked_tree=d.get("marked_tree"),
    )
