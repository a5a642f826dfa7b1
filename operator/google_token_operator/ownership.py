"""Whose is a Secret? The operator writes, patches and deletes only Secrets it created for
that very object and in the role it was created for: the managed-by label, an ownerReference
carrying the object's uid, and the role label. A consent Secret lives in the operator's
namespace, where no ownerReference can name its GoogleClient: its labels name it (uid
included). Anything else under a wanted name is a conflict, reported and never touched
(pure)."""

from __future__ import annotations

import dataclasses
import enum

from . import MANAGED_BY
from .consent_state.pending import is_state_of
from .naming import (
    BRANCH_LABEL,
    CLIENT_LABEL,
    MANAGED_BY_LABEL,
    ROLE_CONSENT,
    ROLE_CONSUMER,
    ROLE_LABEL,
    ROLE_PRIVATE,
    Owner,
    private_secret_name,
)
from .views import SecretMeta


class Claim(enum.Enum):
    ABSENT = "absent"  # no Secret of that name: the operator may create it
    OURS = "ours"  # created by the operator for this very object
    FOREIGN = "foreign"  # someone else's (or another object's): never written or deleted


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: Claim
    why: str = ""  # for FOREIGN: why it is not this object's, for a person to read


# What each role's Secret is, for a person reading why a write was refused.
ROLE_TEXT = {
    ROLE_PRIVATE: "private Secret (it holds the refresh token)",
    ROLE_CONSUMER: "consumer Secret",
}


def _role_text(role: str) -> str:
    return ROLE_TEXT.get(role, f"{role!r} Secret")


def claim(meta: SecretMeta | None, owner: Owner, role: str, name: str) -> Verdict:
    """May `owner` write or delete the Secret `name` (seen as `meta`) in `role`?"""
    if meta is None:
        return Verdict(Claim.ABSENT)
    if meta.labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return Verdict(Claim.FOREIGN, "it exists and was not created by google-token-operator")
    if role == ROLE_CONSENT:
        if is_state_of(meta.labels, owner.namespace, owner.name, owner.uid):
            return Verdict(Claim.OURS)
        return Verdict(Claim.FOREIGN, f"it is not a consent state of this {owner.kind}")
    if owner.uid and owner.uid in meta.owner_uids:
        held = secret_role(meta, owner, name)
        if held == role:
            return Verdict(Claim.OURS)
        return Verdict(
            Claim.FOREIGN,
            f"it is this {owner.kind}'s {_role_text(held)}; a {_role_text(role)} is never "
            "written to it nor deleted in its place",
        )
    holder = meta.labels.get(BRANCH_LABEL)
    holder_text = (
        f"Branch {holder!r}" if holder else f"GoogleClient {meta.labels.get(CLIENT_LABEL, '?')!r}"
    )
    return Verdict(
        Claim.FOREIGN, f"it belongs to {holder_text}, not to this {owner.kind} (first owner wins)"
    )


def secret_role(meta: SecretMeta, owner: Owner, name: str) -> str:
    """The role of a Secret `owner` owns. Every version of the operator labelled its Secrets
    with their role; should one lack the label, it is the private Secret under the private
    name (so it is never overwritten or deleted as a consumer Secret) and a consumer Secret
    anywhere else (the only other kind a GoogleClient or Branch owns)."""
    labelled = meta.labels.get(ROLE_LABEL)
    if labelled:
        return labelled
    if owner.kind == "GoogleClient" and name == private_secret_name(owner.name):
        return ROLE_PRIVATE
    return ROLE_CONSUMER


def reserved_name_problem(token_secret_name: str, client_name: str) -> str:
    """Why a GoogleClient's spec.tokenSecretName cannot be what it is ("" if it can): its
    private Secret's name is never a consumer Secret's (the CRD refuses it too)."""
    if token_secret_name != private_secret_name(client_name):
        return ""
    return (
        f"spec.tokenSecretName {token_secret_name!r} is the name of this GoogleClient's "
        "private Secret, which holds its refresh token; nothing was written to it. Set "
        "spec.tokenSecretName to another name, or remove it to use the default"
    )


def conflict_message(secret_name: str, why: str, field: str) -> str:
    return (
        f"Secret {secret_name!r} cannot be used: {why}. Nothing was written to it; choose "
        f"another {field} (or remove that Secret if it is not needed)"
    )
