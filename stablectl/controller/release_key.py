"""The release key as the policy wants it: the keys it pins (`release.signing`), and the key
`STABLECTL_SIGNING_KEY` names, checked usable *before* anything is merged or tagged, so that a
release never stops half way (merged, then not taggable) and nothing unsigned or signed by an
unpinned key leaves the machine."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping
from pathlib import Path

from stablectl.errors import GitError
from stablectl.gitops.signing import (
    SigningKey,
    Trust,
    check_key_usable,
    check_signature,
    check_signed_file,
    sign_file,
    signing_key_from_env,
)
from stablectl.policy import Policy


def policy_trust(policy: Policy) -> Trust:
    """The keys the policy pins (`release.signing`): what sync checks its own signatures
    against before anything signed leaves the machine, as a downstream's verify will."""
    signing = policy.release.signing

    def path(p: str | None) -> Path | None:
        return Path(p).expanduser() if p else None

    return Trust(
        allowed_signers=path(signing.allowed_signers),
        openpgp_keyring=path(signing.openpgp_keyring),
        required=signing.required,
    )


def release_key(policy: Policy, what: str) -> SigningKey | None:
    """The release key, checked usable (it signs, as a pinned key) before `what` is done;
    None where the policy allows unsigned releases and no key is set. Raises GitError where a
    release could not be signed as the policy requires, so that nothing is merged or tagged
    that cannot then be signed."""
    key = signing_key_from_env()
    if key is None:
        if policy.release.signing.required:
            raise GitError(
                f"release.signing.required, but STABLECTL_SIGNING_KEY names no key: {what} waits "
                "until the release key is available"
            )
        return None
    try:
        check_key_usable(key, policy_trust(policy))
    except GitError as e:
        raise GitError(
            f"the release key cannot sign as the policy pins ({e}): {what} waits"
        ) from None
    return key


def window_payload(extra: Mapping[str, str], series: str) -> bytes:
    """What the release key signs of a release PR: its review window, bound to the series,
    version, the release commit and the tip it was proposed on. Signed, the deadline in the
    PR body cannot be moved by anyone who can edit the body (any writer, on GitHub)."""
    fields = ("version", "pushed", "onto", "deadline")
    lines = ["stablectl review window", f"series {series}"]
    lines += [f"{k} {extra.get(k, '')}" for k in fields]
    return ("\n".join(lines) + "\n").encode()


def sign_window(policy: Policy, extra: Mapping[str, str], series: str) -> str | None:
    """The review window signed with the release key (None without a key)."""
    key = signing_key_from_env()
    if key is None:
        return None
    with tempfile.TemporaryDirectory(prefix="stablectl-window-") as tmp:
        path = Path(tmp) / "window"
        path.write_bytes(window_payload(extra, series))
        sig = sign_file(path, key)
        check_signed_file(path, sig, policy_trust(policy))
        return sig.read_text()


def review_deadline(
    trust: Trust, extra: Mapping[str, str], series: str
) -> tuple[dt.datetime | None, str]:
    """A release PR's review deadline, and why it cannot be trusted ("" when it can). Where
    release keys are pinned, the window must be signed by one of them; a deadline that does
    not parse, or has no time zone, is no deadline."""
    try:
        deadline = dt.datetime.fromisoformat(extra.get("deadline", ""))
    except ValueError:
        return None, f"its review deadline {extra.get('deadline')!r} is not a time"
    if deadline.tzinfo is None:
        return None, f"its review deadline {extra.get('deadline')!r} has no time zone"
    if not trust.pinned:
        return deadline, ""
    signature = extra.get("window", "")
    if not signature:
        return None, "its review window is not signed by the release key"
    try:
        check_signature(window_payload(extra, series), signature.encode(), trust, namespace="file")
    except GitError as e:
        return None, f"its review window's signature does not hold ({e}): the PR body was edited"
    return deadline, ""
