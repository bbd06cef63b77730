"""A small builder of CPython-like git history: the demo's example (controller/demo.py), and
the histories tests and benchmarks build.

It writes real commits into a real bare repository with pygit2: maintenance branches, release
tags, security NEWS entries, miss-islington-style ``[3.x] … (GH-N)`` backports with
``(cherry picked from commit …)`` trailers, reverts and conflicting changes. Time is a counter,
so the same script builds the same SHAs every time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from stablectl.gitops.messages import cherry_pick_message
from stablectl.gitops.objects import blob_bytes, tree
from stablectl.gitops.trees import update_tree

EPOCH = 1_650_000_000  # 2022-04-15
Files = Mapping[str, str | bytes | None]


@dataclass
class Person:
    name: str
    email: str

    def sig(self, when: int) -> pygit2.Signature:
        return pygit2.Signature(self.name, self.email, when, 0)


ALICE = Person("Alice Author", "alice@example.org")
BOT = Person("Miss Islington (bot)", "31488909+miss-islington@users.noreply.github.com")
MAINTAINER = Person("Stable Maintainer", "maint@example.org")


@dataclass
class History:
    """Builds commits on branches of a bare repository."""

    path: Path
    clock: int = EPOCH
    step: int = 3600
    repo: pygit2.Repository = field(init=False)

    def __post_init__(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.repo = pygit2.init_repository(str(self.path), bare=True, initial_head="main")

    def tick(self) -> int:
        self.clock += self.step
        return self.clock

    def tip(self, branch: str) -> str | None:
        try:
            return str(self.repo.references[f"refs/heads/{branch}"].target)
        except KeyError:
            return None

    def read(self, rev: str, path: str) -> str:
        commit = self.repo.revparse_single(rev).peel(pygit2.Commit)
        blob = commit.tree[path]
        return blob_bytes(self.repo, blob.id).decode()

    def commit(
        self,
        branch: str,
        message: str,
        files: Files,
        *,
        author: Person = ALICE,
        committer: Person | None = None,
        parent: str | None = None,
        when: int | None = None,
    ) -> str:
        """Commit `files` (path → content, None deletes) on top of the branch tip."""
        parent = parent if parent is not None else self.tip(branch)
        repo = self.repo
        if parent is None:
            base = tree(repo, repo.TreeBuilder().write())
            parents: list[pygit2.Oid] = []
        else:
            pc = repo[parent].peel(pygit2.Commit)
            base = pc.tree
            parents = [pc.id]
        changes: dict[str, tuple[pygit2.Oid, int] | None] = {}
        for path, content in files.items():
            if content is None:
                changes[path] = None
            else:
                data = content.encode() if isinstance(content, str) else content
                changes[path] = (repo.create_blob(data), int(FileMode.BLOB))
        new_tree = update_tree(repo, base, changes)
        when = when if when is not None else self.tick()
        sha = repo.create_commit(
            f"refs/heads/{branch}",
            author.sig(when),
            (committer or author).sig(when),
            message if message.endswith("\n") else message + "\n",
            new_tree,
            parents,
        )
        return str(sha)

    def branch(self, name: str, at: str) -> None:
        self.repo.references.create(f"refs/heads/{name}", pygit2.Oid(hex=at), force=True)

    def tag(self, name: str, at: str, message: str | None = None) -> None:
        when = self.tick()
        self.repo.create_tag(
            name,
            pygit2.Oid(hex=at),
            pygit2.enums.ObjectType.COMMIT,
            BOT.sig(when),
            message or f"Python {name.lstrip('v')}\n",
        )

    def backport(
        self,
        sha: str,
        branch: str,
        *,
        prefix: str | None = None,
        record_origin: bool = True,
        adapt: Callable[[dict[str, str | None]], dict[str, str | None]] | None = None,
        author: Person | None = None,
        message: str | None = None,
    ) -> str:
        """Re-apply the change of `sha` on `branch` as a miss-islington backport would.

        The change is replayed file by file: each changed file takes the source's new
        content, unless `adapt` rewrites the file set (a hand-adapted backport).
        """
        repo = self.repo
        src = repo[sha].peel(pygit2.Commit)
        parent_tree = src.parents[0].tree
        diff = parent_tree.diff_to_tree(src.tree)
        files: dict[str, str | None] = {}
        for d in diff.deltas:
            if d.status_char() == "D":
                files[d.old_file.path] = None
            else:
                files[d.new_file.path] = blob_bytes(repo, d.new_file.id).decode()
        if adapt is not None:
            files = adapt(files)
        subject, _, rest = src.message.partition("\n")
        if prefix is None:
            prefix = f"[{branch}] "
        subject = subject.replace("(#", "(GH-")
        message = message or f"{prefix}{subject}{message_rest(rest)}"
        if record_origin:
            message = cherry_pick_message(message, sha)
        a = src.author
        return self.commit(
            branch,
            message,
            files,
            author=author or Person(a.name, a.email),
            committer=BOT,
        )

    def revert(self, sha: str, branch: str) -> str:
        repo = self.repo
        src = repo[sha].peel(pygit2.Commit)
        parent_tree = src.parents[0].tree
        diff = parent_tree.diff_to_tree(src.tree)
        files: dict[str, str | None] = {}
        for d in diff.deltas:
            if d.status_char() == "A":
                files[d.new_file.path] = None
            else:
                files[d.old_file.path] = blob_bytes(repo, d.old_file.id).decode()
        subject = src.message.splitlines()[0]
        return self.commit(branch, f'Revert "{subject}"\n\nThis reverts commit {sha}.\n', files)


def message_rest(rest: str) -> str:
    """What follows a subject line in a commit message: a newline, then the rest."""
    return "\n" + rest if rest else "\n"


def news(kind: str, issue: int, text: str) -> dict[str, str]:
    """A blurb file as CPython's `blurb` writes it under Misc/NEWS.d/next/<kind>/."""
    return {f"Misc/NEWS.d/next/{kind}/2023-01-01-00-00-00.gh-issue-{issue}.abcdef.rst": text + "\n"}


def lines(n: int, prefix: str) -> str:
    return "".join(f"{prefix} line {i}\n" for i in range(n))
