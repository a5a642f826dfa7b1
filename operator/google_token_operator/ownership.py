"""Whose is a Secret? The operator writes, patches and deletes only Secrets it created for
that very object: the managed-by label plus an ownerReference carrying the object's uid.
Anything else under a wanted name is a conflict, reported and never touched (pure)."""

from __future__ import annotations

import dataclasses
import enum

from . import MANAGED_BY
from .naming import BRANCH_LABEL, CLIENT_LABEL, MANAGED_BY_LABEL, Owner
from .views import SecretMeta


class Claim(enum.Enum):
    ABSENT = "absent"  # no Secret of that name: the operator may create it
    OURS = "ours"  # created by the operator for this very object
    FOREIGN = "foreign"  # someone else's (or another object's): never written or deleted


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: Claim
    why: str = ""  # for FOREIGN: why it is not this object's, for a person to read


def claim(meta: SecretMeta | None, owner: Owner) -> Verdict:
    if meta is None:
        return Verdict(Claim.ABSENT)
    if meta.labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return Verdict(Claim.FOREIGN, "it exists and was not created by google-token-operator")
    if owner.uid and owner.uid in meta.owner_uids:
        return Verdict(Claim.OURS)
    holder = meta.labels.get(BRANCH_LABEL)
    holder_text = (
        f"Branch {holder!r}" if holder else f"GoogleClient {meta.labels.get(CLIENT_LABEL, '?')!r}"
    )
    return Verdict(
        Claim.FOREIGN, f"it belongs to {holder_text}, not to this {owner.kind} (first owner wins)"
    )


def conflict_message(secret_name: str, why: str, field: str) -> str:
    return (
        f"Secret {secret_name!r} cannot be used: {why}. Nothing was written to it; choose "
        f"another {field} (or remove that Secret if it is not needed)"
    )
