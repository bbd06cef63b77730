"""The release key as the policy wants it: the keys it pins (`release.signing`), and the key
`STABLECTL_SIGNING_KEY` names, checked usable *before* anything is merged or tagged, so that a
release never stops half way (merged, then not taggable) and nothing unsigned or signed by an
unpinned key leaves the machine."""

from __future__ import annotations

from pathlib import Path

from stablectl.errors import GitError
from stablectl.gitops.signing import SigningKey, Trust, check_key_usable, signing_key_from_env
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
