"""Every Kubernetes object the operator writes, built by a pure function returning a dict.

Handlers never assemble objects inline; they call a builder and apply the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import MANAGED_BY
from .naming import (
    ROLE_CONSUMER,
    ROLE_PRIVATE,
    BranchLocation,
    Owner,
    labels_for,
    private_secret_name,
)
from .timeutil import format_rfc3339
from .tokens import AccessToken, TokenRecord, encode_data, record_to_data


def content_hash(data: Mapping[str, str]) -> str:
    """Digest of a Secret's data: compared instead of the data, so nothing secret is cached."""
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def consumer_data(access: AccessToken, location: BranchLocation | None) -> dict[str, str]:
    """The keys of a consumer Secret (docs/reference/secrets.md): never a refresh token or
    client secret."""
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


MAX_EVENT_MESSAGE = 1024


def event_object(
    involved: Mapping[str, Any], warning: bool, reason: str, message: str, now: dt.datetime
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (a custom resource's body)."""
    meta = involved.get("metadata") or {}
    stamp = format_rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:MAX_EVENT_MESSAGE],
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
