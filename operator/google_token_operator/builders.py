"""Every Kubernetes object the operator writes, built by a pure function returning a dict.

Handlers never assemble objects inline; they call a builder and apply the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import GROUP, MANAGED_BY, VERSION
from .timeutil import format_rfc3339
from .tokens import AccessToken, TokenRecord, encode_data, record_to_data

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLIENT_LABEL = f"{GROUP}/client"
BRANCH_LABEL = f"{GROUP}/branch"
ROLE_LABEL = f"{GROUP}/role"
# Secret roles, so a label selector tells consumer Secrets from the private ones.
ROLE_PRIVATE = "private"
ROLE_CONSUMER = "consumer"
ROLE_CONSENT = "consent"

API_VERSION = f"{GROUP}/{VERSION}"


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


def labels_for(client_name: str, branch_name: str | None = None, role: str = "") -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY, CLIENT_LABEL: client_name}
    if branch_name is not None:
        labels[BRANCH_LABEL] = branch_name
    if role:
        labels[ROLE_LABEL] = role
    return labels


def private_secret_name(client_name: str) -> str:
    return f"{client_name}-google-oauth"


def default_token_secret_name(resource_name: str) -> str:
    return f"{resource_name}-google-token"


def content_hash(data: Mapping[str, str]) -> str:
    """Digest of a Secret's data: compared instead of the data, so nothing secret is cached."""
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def consumer_data(access: AccessToken, location: BranchLocation | None) -> dict[str, str]:
    """The keys of a consumer Secret (DESIGN.md): never a refresh token or client secret."""
    fields = {
        "access_token": access.value,
        "expiry": format_rfc3339(access.expires_at),
        "token_type": access.token_type,
        "scopes": " ".join(access.scopes),
    }
    if location is not None:
        fields |= {
            "account_id": location.account_id,
            "location_id": location.location_id,
            "location_name": location.location_name,
        }
    return {**fields, "token.json": json.dumps(fields, sort_keys=True)}


def consumer_secret(
    owner: Owner,
    secret_name: str,
    client_name: str,
    access: AccessToken,
    location: BranchLocation | None = None,
) -> dict[str, Any]:
    branch = owner.name if owner.kind == "Branch" else None
    return _secret(
        owner,
        secret_name,
        labels_for(client_name, branch, ROLE_CONSUMER),
        encode_data(consumer_data(access, location)),
    )


def private_secret(owner: Owner, record: TokenRecord) -> dict[str, Any]:
    return _secret(
        owner,
        private_secret_name(owner.name),
        labels_for(owner.name, role=ROLE_PRIVATE),
        record_to_data(record),
    )


def _secret(
    owner: Owner, name: str, labels: Mapping[str, str], data: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": dict(labels),
            "ownerReferences": [owner.reference()],
        },
        "data": dict(data),
    }
