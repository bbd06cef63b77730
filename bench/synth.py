"""Generate a synthetic CPython-scale history with `git fast-import` (cached on disk).

main: 100,000 commits over 3,000 files; maintenance branches 3.10–3.13 branched at 60k, 70k,
80k and 90k with release tags; 3% of main's commits are security fixes (a code change plus a
`Misc/NEWS.d/next/Security/` entry), 80% of those made after a branch point are backported to
it miss-islington style (`[3.x] … (GH-N)` + `(cherry picked from commit …)`), the rest stay on
main. Deterministic: the same parameters give the same SHAs.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 1_500_000_000


@dataclass
class Params:
    main_commits: int = 100_000
    files: int = 3_000
    lines: int = 40
    security_rate: float = 0.03
    backport_rate: float = 0.8
    branches: tuple[tuple[str, int], ...] = (
        ("3.10", 60_000),
        ("3.11", 70_000),
        ("3.12", 80_000),
        ("3.13", 90_000),
    )
    releases_every: int = 1_500  # a release tag on each branch every N main commits
    seed: int = 42

    def key(self) -> str:
        return (
            f"m{self.main_commits}-f{self.files}-s{self.security_rate}-b{self.backport_rate}"
            f"-seed{self.seed}"
        )


@dataclass
class _Change:
    index: int  # main commit number
    path: str
    line: int
    text: str
    security: bool
    subject: str
    news: str | None = None


@dataclass
class _Stream:
    out: list[bytes] = field(default_factory=list)

    def data(self, payload: bytes) -> None:
        self.out.append(b"data %d\n" % len(payload) + payload + b"\n")

    def line(self, text: str) -> None:
        self.out.append(text.encode() + b"\n")


def _fast_import(repo: Path, stream: list[bytes], marks_out: Path | None = None) -> None:
    cmd = ["git", "--git-dir", str(repo), "fast-import", "--quiet", "--force"]
    if marks_out is not None:
        cmd.append(f"--export-marks={marks_out}")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for chunk in stream:
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")


def _sig(name: str, email: str, when: int) -> str:
    return f"{name} <{email}> {when} +0000"


def generate(root: Path, p: Params) -> Path:
    """Build (or reuse) the synthetic repository; returns its path."""
    repo = root / f"synthetic-{p.key()}.git"
    if (repo / "stablectl-synth-done").exists():
        return repo
    if repo.exists():
        subprocess.run(["rm", "-rf", str(repo)], check=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    rnd = random.Random(p.seed)
    t0 = time.time()
    dirs = [f"Lib/pkg{i:02d}" for i in range(40)] + [f"Modules/m{i:02d}" for i in range(20)]
    paths = [f"{dirs[i % len(dirs)]}/file{i:04d}.py" for i in range(p.files)]
    content = {path: [f"# {path} line {j}" for j in range(p.lines)] for path in paths}

    # ---- pass 1: main
    s = _Stream()
    s.line("commit refs/heads/main")
    s.line("mark :1")
    s.line(f"committer {_sig('Init', 'init@example.org', EPOCH)}")
    s.data(b"Initial import\n")
    for path in paths:
        s.line(f"M 100644 inline {path}")
        s.data(("\n".join(content[path]) + "\n").encode())
    changes: list[_Change] = []
    for n in range(2, p.main_commits + 1):
        path = rnd.choice(paths)
        line = rnd.randrange(p.lines)
        text = f"# {path} line {line} v{n}"
        content[path][line] = text
        security = rnd.random() < p.security_rate
        issue = 10_000 + n
        verb = "Fix" if security else "Improve"
        subject = f"gh-{issue}: {verb} {path.rsplit('/', 1)[1]} (#{issue + 1})"
        ch = _Change(n, path, line, text, security, subject)
        s.line("commit refs/heads/main")
        s.line(f"mark :{n}")
        when = EPOCH + n * 600
        s.line(f"author {_sig(f'Dev {n % 97}', f'dev{n % 97}@example.org', when)}")
        s.line(f"committer {_sig('GitHub', 'noreply@github.com', when)}")
        body = subject + "\n"
        if security:
            body += "\nHarden input handling.\n"
        s.data(body.encode())
        s.line(f"from :{n - 1}")
        s.line(f"M 100644 inline {path}")
        s.data(("\n".join(content[path]) + "\n").encode())
        if security:
            news = f"Misc/NEWS.d/next/Security/2023-01-01.gh-issue-{issue}.rst"
            ch.news = news
            s.line(f"M 100644 inline {news}")
            s.data(f"Fix {path}.\n".encode())
        changes.append(ch)
        if n % 20_000 == 0:
            print(f"  synth: main {n}/{p.main_commits}", file=sys.stderr)
    marks = root / f"{p.key()}.marks"
    _fast_import(repo, s.out, marks)
    sha_of: dict[int, str] = {}
    for ln in marks.read_text().splitlines():
        mark, sha = ln.split()
        sha_of[int(mark[1:])] = sha

    # ---- pass 2: maintenance branches, backports and release tags
    s = _Stream()
    mark = p.main_commits + 1
    # Rebuild main's content at each branch point by replaying changes.
    base_content = {path: [f"# {path} line {j}" for j in range(p.lines)] for path in paths}
    by_index = {c.index: c for c in changes}
    for name, point in p.branches:
        branch_content = {k: list(v) for k, v in base_content.items()}
        for i in range(2, point + 1):
            c = by_index[i]
            branch_content[c.path][c.line] = c.text
        s.line(f"reset refs/heads/{name}")
        s.line(f"from {sha_of[point]}")
        prev = f"{sha_of[point]}"
        release = 0
        pending: list[_Change] = []
        for i in range(point + 1, p.main_commits + 1):
            c = by_index[i]
            if c.security and rnd.random() < p.backport_rate:
                pending.append(c)
            # backports land ~10 commits later
            while pending and pending[0].index <= i - 10:
                b = pending.pop(0)
                branch_content[b.path][b.line] = b.text
                mark += 1
                when = EPOCH + i * 600 + 30
                s.line(f"commit refs/heads/{name}")
                s.line(f"mark :{mark}")
                s.line(f"author {_sig('Dev', 'dev@example.org', EPOCH + b.index * 600)}")
                s.line(f"committer {_sig('Miss Islington (bot)', 'mi@example.org', when)}")
                subj = b.subject.replace("(#", "(GH-")
                msg = (
                    f"[{name}] {subj}\n\nHarden input handling.\n"
                    f"(cherry picked from commit {sha_of[b.index]})\n"
                )
                s.data(msg.encode())
                s.line(f"from {prev}")
                s.line(f"M 100644 inline {b.path}")
                s.data(("\n".join(branch_content[b.path]) + "\n").encode())
                if b.news:
                    s.line(f"M 100644 inline {b.news}")
                    s.data(f"Fix {b.path}.\n".encode())
                prev = f":{mark}"
            if (i - point) % p.releases_every == 0:
                release += 1
                mark += 1
                when = EPOCH + i * 600 + 60
                s.line(f"commit refs/heads/{name}")
                s.line(f"mark :{mark}")
                s.line(f"committer {_sig('Release Manager', 'rm@example.org', when)}")
                s.data(f"Python {name}.{release}\n".encode())
                s.line(f"from {prev}")
                s.line("M 100644 inline Include/patchlevel.h")
                s.data(f'#define PY_VERSION "{name}.{release}"\n'.encode())
                prev = f":{mark}"
                s.line(f"tag v{name}.{release}")
                s.line(f"from :{mark}")
                s.line(f"tagger {_sig('Release Manager', 'rm@example.org', when)}")
                s.data(f"Python {name}.{release}\n".encode())
    _fast_import(repo, s.out)
    (repo / "stablectl-synth-done").write_text(f"{time.time() - t0:.1f}s\n")
    return repo


if __name__ == "__main__":
    out = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.cache"), Params())
    print(out)
