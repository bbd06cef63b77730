"""Reproducible source tarballs of a git tree: the same tree gives the same bytes, always.

Entries are sorted by path, every mtime is the tagged commit's time, owners are 0/0 with empty
names, modes are 0644/0755 (0755 for executables and directories), symlinks are kept, the
gzip header carries no name and mtime 0, and xz uses fixed settings. `git archive` makes the
same promises for tar but not for the compressed streams across versions; this does both.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from stablectl.errors import GitError


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int


def _entries(
    repo: pygit2.Repository, tree: pygit2.Tree, prefix: str
) -> list[tuple[str, int, bytes | None, str | None]]:
    """(path, mode, data, link target) for every entry, depth first, sorted."""
    out: list[tuple[str, int, bytes | None, str | None]] = []
    for entry in sorted(tree, key=lambda e: e.name or ""):
        path = f"{prefix}{entry.name}"
        mode = int(entry.filemode)
        if mode == int(FileMode.TREE):
            out.append((path + "/", mode, None, None))
            out += _entries(repo, repo[entry.id].peel(pygit2.Tree), path + "/")
        elif mode == int(FileMode.COMMIT):
            continue  # submodules are not part of a source tarball
        elif mode == int(FileMode.LINK):
            target = bytes(repo[entry.id].read_raw()).decode("utf-8", "surrogateescape")
            out.append((path, mode, None, target))
        else:
            out.append((path, mode, bytes(repo[entry.id].read_raw()), None))
    return out


def tar_bytes(repo: pygit2.Repository, commit_sha: str, stem: str) -> bytes:
    """An uncompressed tar of the commit's tree under `stem/`."""
    try:
        commit = repo[pygit2.Oid(hex=commit_sha)].peel(pygit2.Commit)
    except (KeyError, ValueError) as e:
        raise GitError(f"cannot archive {commit_sha[:12]}: {e}") from None
    mtime = int(commit.commit_time)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(stem + "/")
        _norm(root, tarfile.DIRTYPE, 0o755, mtime)
        tar.addfile(root)
        for path, mode, data, target in _entries(repo, commit.tree, stem + "/"):
            info = tarfile.TarInfo(path.rstrip("/") if path.endswith("/") else path)
            if path.endswith("/"):
                _norm(info, tarfile.DIRTYPE, 0o755, mtime)
                tar.addfile(info)
            elif target is not None:
                _norm(info, tarfile.SYMTYPE, 0o777, mtime)
                info.linkname = target
                tar.addfile(info)
            else:
                assert data is not None
                exe = mode == int(FileMode.BLOB_EXECUTABLE)
                _norm(info, tarfile.REGTYPE, 0o755 if exe else 0o644, mtime)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _norm(info: tarfile.TarInfo, kind: bytes, mode: int, mtime: int) -> None:
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.pax_headers = {}


def build_tarballs(
    repo: pygit2.Repository, commit_sha: str, stem: str, out_dir: Path
) -> list[Artifact]:
    """`stem.tar.xz` and `stem.tgz` of the commit, plus nothing else; reproducible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = tar_bytes(repo, commit_sha, stem)
    xz = lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, mtime=0, compresslevel=9) as g:
        g.write(raw)
    artifacts = []
    for name, data in ((f"{stem}.tar.xz", xz), (f"{stem}.tgz", gz_buf.getvalue())):
        path = out_dir / name
        path.write_bytes(data)
        artifacts.append(Artifact(path, hashlib.sha256(data).hexdigest(), len(data)))
    return artifacts


def sha256sums(artifacts: list[Artifact]) -> str:
    """The `sha256sum` format: `HEX  NAME` lines, sorted by name."""
    return "".join(
        f"{a.sha256}  {a.path.name}\n" for a in sorted(artifacts, key=lambda a: a.path.name)
    )


def parse_sha256sums(text: str) -> dict[str, str]:
    """`sha256sum` lines (`HEX  NAME`, as `sha256sums` writes them) as name -> digest."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            out[name.lstrip("*")] = digest
    return out


def file_artifact(path: Path) -> Artifact:
    data = path.read_bytes()
    return Artifact(path, hashlib.sha256(data).hexdigest(), len(data))
