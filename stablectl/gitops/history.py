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
        adapt: Callable[[dict[str, str | bytes | None]], Files] | None = None,
        author: Person | None = None,
        committer: Person = BOT,
        message: str | None = None,
        source: pygit2.Repository | None = None,
    ) -> str:
        """Re-apply the change of `sha` (a commit of `source`, default this repository) on
        `branch` as a miss-islington backport would.

        The change is replayed file by file: each changed file takes the source's new
        content, unless `adapt` rewrites the file set (a hand-adapted backport).
        """
        src = (source or self.repo)[sha].peel(pygit2.Commit)
        files: Files = changed_files(source or self.repo, src)
        if adapt is not None:
            files = adapt(dict(files))
        subject, _, rest = src.message.partition("\n")
        if prefix is None:
            prefix = f"[{branch}] "
        subject = subject.replace("(#", "(GH-")
        message = message or f"{prefix}{subject}{message_rest(rest)}"
        if record_origin:
            message = cherry_pick_message(message, sha)
        a = src.author
        return self.commit(
            branch, message, files, author=author or Person(a.name, a.email), committer=committer
        )

    def revert(self, sha: str, branch: str) -> str:
        src = self.repo[sha].peel(pygit2.Commit)
        files = changed_files(self.repo, src, reverse=True)
        subject = src.message.splitlines()[0]
        return self.commit(branch, f'Revert "{subject}"\n\nThis reverts commit {sha}.\n', files)


def changed_files(
    repo: pygit2.Repository, commit: pygit2.Commit, *, reverse: bool = False
) -> dict[str, str | bytes | None]:
    """What `commit` changed against its first parent, as `History.commit` takes it: each path
    with its new content (None: deleted); `reverse`, the content before (None: it was added)."""
    files: dict[str, str | bytes | None] = {}
    for d in commit.parents[0].tree.diff_to_tree(commit.tree).deltas:
        gone = d.status_char() == ("A" if reverse else "D")
        if reverse:
            side = d.new_file if gone else d.old_file
        else:
            side = d.old_file if gone else d.new_file
        files[side.path] = None if gone else blob_bytes(repo, side.id)
    return files


def message_rest(rest: str) -> str:
    """What follows a subject line in a commit message: a newline, then the rest."""
    return "\n" + rest if rest else "\n"


def news(kind: str, issue: int, text: str) -> dict[str, str]:
    """A blurb file as CPython's `blurb` writes it under Misc/NEWS.d/next/<kind>/."""
    return {f"Misc/NEWS.d/next/{kind}/2023-01-01-00-00-00.gh-issue-{issue}.abcdef.rst": text + "\n"}


def lines(n: int, prefix: str) -> str:
    return "".join(f"{prefix} line {i}\n" for i in range(n))
