"""Names, labels and references of the objects the operator reads and writes (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from . import GROUP, MANAGED_BY, VERSION

# (namespace, name) of a namespaced object.
Key = tuple[str, str]

API_VERSION = f"{GROUP}/{VERSION}"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLIENT_LABEL = f"{GROUP}/client"
BRANCH_LABEL = f"{GROUP}/branch"
ROLE_LABEL = f"{GROUP}/role"
# Secret roles, so a label selector tells consumer Secrets from the private ones.
ROLE_PRIVATE = "private"
ROLE_CONSUMER = "consumer"
ROLE_CONSENT = "consent"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The custom resource an object belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclasses.dataclass(frozen=True)
class BranchLocation:
    account_id: str
    location_id: str

    @property
    def location_name(self) -> str:
        return f"accounts/{self.account_id}/locations/{self.location_id}"


# A label value holds at most 63 characters; the CRDs bound names to that, and a longer name
# (an older CRD) is shortened with a digest rather than failing every write.
LABEL_VALUE_MAX = 63


def label_value(name: str) -> str:
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name[: LABEL_VALUE_MAX - 13].rstrip('-.')}-{digest}"


def labels_for(client_name: str, branch_name: str | None = None, role: str = "") -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY, CLIENT_LABEL: label_value(client_name)}
    if branch_name is not None:
        labels[BRANCH_LABEL] = label_value(branch_name)
    if role:
        labels[ROLE_LABEL] = role
    return labels


def is_managed(labels: Mapping[str, str]) -> bool:
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def private_secret_name(client_name: str) -> str:
    return f"{client_name}-google-oauth"


def default_token_secret_name(resource_name: str) -> str:
    return f"{resource_name}-google-token"
