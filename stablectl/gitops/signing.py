"""Signatures on releases, made and checked with the tools distributions already use:

- **ssh** (`ssh-keygen -Y sign/verify`, namespace `file` for files and `git` for tags, as
  `git tag -s` with `gpg.format=ssh` makes them), pinned by an allowed-signers file;
- **OpenPGP** (`gpg --detach-sign`, checked with `gpgv` against a pinned keyring: Debian's
  `uscan`, Fedora's `%gpgverify` and Gentoo's verify-sig work the same way).

The private key is never in the policy: sync reads its location from `STABLECTL_SIGNING_KEY`
(a key file for ssh, a key id in `GNUPGHOME` for OpenPGP) and the format from
`STABLECTL_SIGNING_FORMAT`. Both run offline.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stablectl.errors import GitError, register_secret
from stablectl.gitops.git import git, output

Format = Literal["ssh", "openpgp"]
SSH_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
PGP_BEGIN = b"-----BEGIN PGP SIGNATURE-----"


SUFFIXES: dict[Format, str] = {"ssh": ".sig", "openpgp": ".asc"}


def detached_signatures(name: str) -> tuple[str, ...]:
    """The file names a detached signature of `name` may have, one per format."""
    return tuple(name + suffix for suffix in SUFFIXES.values())


@dataclass(frozen=True)
class SigningKey:
    """The key sync signs with: a private key file (ssh) or a key id (OpenPGP)."""

    key: str
    format: Format

    @property
    def suffix(self) -> str:
        """The detached signature's file suffix."""
        return SUFFIXES[self.format]


def signing_key_from_env() -> SigningKey | None:
    """The release key `STABLECTL_SIGNING_KEY` names: an ssh private key *file*, or an
    OpenPGP key id. Its value is registered as a secret before anything else, and never
    echoed: a CI that puts the key's text in the variable (a common habit) gets a clear error,
    not its key in a log."""
    key = os.environ.get("STABLECTL_SIGNING_KEY")
    if not key:
        return None
    register_secret(key)
    fmt = os.environ.get("STABLECTL_SIGNING_FORMAT", "ssh")
    if fmt not in ("ssh", "openpgp"):
        raise GitError(f"STABLECTL_SIGNING_FORMAT={fmt!r}: use ssh or openpgp")
    looks_like_text = "\n" in key or "PRIVATE KEY" in key or len(key) > 1024
    if looks_like_text:
        raise GitError(
            "STABLECTL_SIGNING_KEY holds a key's text, not the path of a key file (its value "
            "is not shown): write the key to a file readable only by this job (e.g. "
            '`install -m 600 /dev/null "$RUNNER_TEMP/release.key"` then write the secret '
            "into it) and set STABLECTL_SIGNING_KEY to that path"
        )
    if fmt == "ssh":
        path = Path(key).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise GitError(
                "STABLECTL_SIGNING_KEY must name a readable ssh private key file; the path it "
                "holds is not one (its value is not shown)"
            )
        return SigningKey(str(path), "ssh")
    return SigningKey(key, "openpgp")


def check_key_usable(key: SigningKey, trust: Trust) -> None:
    """Sign a probe and check it against the pinned keys: a key that cannot sign, or signs as
    someone downstreams do not pin, fails here, before anything is merged or tagged."""
    with tempfile.TemporaryDirectory(prefix="stablectl-probe-") as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"stablectl signing probe\n")
        sig = sign_file(probe, key)
        if trust.pinned:
            check_signature(probe.read_bytes(), sig.read_bytes(), trust, namespace="file")


def check_signed_file(path: Path, signature: Path, trust: Trust) -> None:
    """A detached signature just made: present, and (with keys pinned) by a pinned key over
    exactly `path`; raises GitError before it is published otherwise."""
    if not signature.is_file() or not signature.read_bytes().strip():
        raise GitError(f"signing {path.name} produced no signature")
    if trust.pinned:
        check_signature(path.read_bytes(), signature.read_bytes(), trust, namespace="file")


def check_signed_tag(git_dir: Path, tag: str, trust: Trust, *, ref: str | None = None) -> None:
    """Tag `tag` (at `ref`, default `refs/tags/<tag>`) carries a signature, and (with keys
    pinned) a pinned key's over exactly its content; raises GitError otherwise. For a tag just
    made: `git tag -s` exits 0 without signing when it cannot load an ssh key (git 2.39), so
    an unsigned tag would be pushed; for a tag found on the fork: whether sync may build
    from it."""
    raw = bytes(git(["cat-file", "tag", ref or f"refs/tags/{tag}"], git_dir=git_dir).stdout)
    payload, signature = split_signed_tag(raw)
    if signature is None:
        raise GitError(
            f"tag {tag} is without a signature (a signing key that did not load, or a tag "
            "made elsewhere)"
        )
    if trust.pinned:
        check_signature(payload, signature, trust, namespace="git")


@dataclass(frozen=True)
class Trust:
    """The keys a downstream pins: whatever they signed is accepted, nothing else."""

    allowed_signers: Path | None = None
    openpgp_keyring: Path | None = None
    required: bool = False

    @property
    def pinned(self) -> bool:
        return self.allowed_signers is not None or self.openpgp_keyring is not None


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=data, capture_output=True, check=False)


def sign_file(path: Path, key: SigningKey) -> Path:
    """A detached signature next to `path` (`.sig` for ssh, `.asc` for OpenPGP)."""
    out = path.with_name(path.name + key.suffix)
    out.unlink(missing_ok=True)
    if key.format == "ssh":
        proc = _run(["ssh-keygen", "-q", "-Y", "sign", "-f", key.key, "-n", "file", str(path)])
    else:
        proc = _run(
            [
                "gpg",
                "--batch",
                "--yes",
                "--armor",
                "--local-user",
                key.key,
                "--output",
                str(out),
                "--detach-sign",
                str(path),
            ]
        )
    if proc.returncode != 0 or not out.is_file():
        raise GitError(f"cannot sign {path.name}: {proc.stderr.decode(errors='replace').strip()}")
    return out


def check_signature(payload: bytes, signature: bytes, trust: Trust, *, namespace: str) -> str:
    """Who signed `payload` among the pinned keys; raises `GitError` saying why not."""
    if signature.lstrip().startswith(SSH_BEGIN):
        if trust.allowed_signers is None:
            raise GitError("an ssh signature, but no allowed-signers file is pinned")
        return _check_ssh(payload, signature, trust.allowed_signers, namespace)
    if signature.lstrip().startswith(PGP_BEGIN):
        if trust.openpgp_keyring is None:
            raise GitError("an OpenPGP signature, but no OpenPGP keyring is pinned")
        return _check_openpgp(payload, signature, trust.openpgp_keyring)
    raise GitError("not an ssh or OpenPGP signature")


def _check_ssh(payload: bytes, signature: bytes, allowed: Path, namespace: str) -> str:
    with tempfile.TemporaryDirectory(prefix="stablectl-sig-") as tmp:
        sig = Path(tmp) / "payload.sig"
        sig.write_bytes(signature)
        found = _run(["ssh-keygen", "-Y", "find-principals", "-f", str(allowed), "-s", str(sig)])
        principals = found.stdout.decode().split()
        if found.returncode != 0 or not principals:
            raise GitError("signed by a key the allowed-signers file does not pin")
        who = principals[0]
        proc = _run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(allowed),
                "-I",
                who,
                "-n",
                namespace,
                "-s",
                str(sig),
            ],
            payload,
        )
        if proc.returncode != 0:
            raise GitError(f"BAD signature (claims {who}): the signed content was changed")
        return who


def _check_openpgp(payload: bytes, signature: bytes, keyring: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="stablectl-sig-") as tmp:
        ring = keyring
        if keyring.read_bytes()[:64].lstrip().startswith(b"-----BEGIN"):
            ring = Path(tmp) / "keyring.gpg"
            proc = _run(["gpg", "--batch", "--dearmor", "-o", str(ring), str(keyring)])
            if proc.returncode != 0:
                raise GitError(f"cannot read the OpenPGP keyring {keyring}")
        sig, data = Path(tmp) / "payload.asc", Path(tmp) / "payload"
        sig.write_bytes(signature)
        data.write_bytes(payload)
        proc = _run(
            ["gpgv", "--status-fd", "1", "--keyring", str(ring.resolve()), str(sig), str(data)]
        )
        status = proc.stdout.decode(errors="replace")
        good = [ln.split(" ", 3) for ln in status.splitlines() if ln.startswith("[GNUPG:] GOODSIG")]
        if proc.returncode == 0 and good:
            return good[0][3] if len(good[0]) > 3 else good[0][2]
        if "[GNUPG:] BADSIG" in status:
            raise GitError("BAD signature: the signed content was changed")
        raise GitError("signed by a key the OpenPGP keyring does not pin")


def split_signed_tag(raw: bytes) -> tuple[bytes, bytes | None]:
    """A tag object's payload and its signature (None when unsigned), as git splits them."""
    for begin in (SSH_BEGIN, PGP_BEGIN, b"-----BEGIN SIGNED MESSAGE-----"):
        at = raw.rfind(b"\n" + begin)
        if at >= 0:
            return raw[: at + 1], raw[at + 1 :]
        if raw.startswith(begin):
            return b"", raw
    return raw, None


def make_tag(
    git_dir: Path,
    tag: str,
    commit: str,
    message: str,
    *,
    tagger: tuple[str, str],
    key: SigningKey | None,
) -> None:
    """An annotated tag `tag` on `commit`, signed with `key` (`git tag -s`, ssh or OpenPGP as
    the key's format; unsigned without one), tagged at the commit's own time so the same
    release gives the same tag object."""
    name, email = tagger
    args = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    sign: list[str] = []
    if key is not None:
        fmt = "ssh" if key.format == "ssh" else "openpgp"
        args += ["-c", f"gpg.format={fmt}", "-c", f"user.signingkey={key.key}"]
        sign = ["-s"]
    when = output(git(["show", "-s", "--format=%ct", commit], git_dir=git_dir)).strip()
    git(
        [*args, "tag", "-a", *sign, "-F", "-", tag, commit],
        git_dir=git_dir,
        input=message.encode(),
        env={"GIT_COMMITTER_DATE": f"{when} +0000"},
        what=f"cannot create tag {tag}",
    )


def new_ssh_key(path: Path, comment: str) -> Path:
    """A new ed25519 key without a passphrase at `path` (and `path`.pub): the demo's release
    key."""
    proc = _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"ssh-keygen cannot make a key at {path}: {why}")
    return path
