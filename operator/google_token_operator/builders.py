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
    ROLE_LABEL,
    ROLE_PRIVATE,
    BranchLocation,
    Owner,
    labels_for,
    private_secret_name,
)
from .secret_template import NO_TEMPLATE, SecretTemplate, is_operators_own, render, template_values
from .timeutil import format_rfc3339
from .tokens import AccessToken, TokenRecord, encode_data, record_to_data


def content_hash(data: Mapping[str, str]) -> str:
    """Digest of a Secret's data: compared instead of the data, so nothing secret is cached."""
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def written_hash(body: Mapping[str, Any]) -> str:
    """Digest of what the operator writes into a Secret: its data, and for a consumer Secret
    also the labels (other than the operator's own) and annotations, which a template sets.
    Without those it is the data's digest, as before templates."""
    data = body.get("data") or {}
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(ROLE_LABEL) != ROLE_CONSUMER:
        return content_hash(data)
    extra = {str(k): str(v) for k, v in labels.items() if not is_operators_own(str(k))}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    if not extra and not annotations:
        return content_hash(data)
    parts = {"data": dict(data), "labels": extra, "annotations": annotations}
    return content_hash({key: json.dumps(part, sort_keys=True) for key, part in parts.items()})


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
    template: SecretTemplate = NO_TEMPLATE,
    account_email: str = "",
) -> dict[str, Any]:
    """The consumer Secret: the standard keys, plus what `template` adds (its data rendered
    over the standard keys and `account_email`; its labels after the operator's own, which
    the template cannot hold)."""
    branch = owner.name if owner.kind == "Branch" else None
    standard = consumer_data(access, location)
    values = template_values(standard, account_email, owner.kind)
    rendered = {key: render(text, values) for key, text in template.data.items()}
    body = _secret(
        owner,
        secret_name,
        {**template.labels, **labels_for(client_name, branch, ROLE_CONSUMER)},
        encode_data({**rendered, **standard}),
    )
    if template.annotations:
        body["metadata"]["annotations"] = dict(template.annotations)
    return body


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
