"""Branch decisions: pure functions over the Branch, its client's state and the clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .conditions import READY, Condition, Reason
from .naming import BranchLocation, default_token_secret_name
from .timeutil import format_rfc3339, parse_rfc3339
from .tokens import AccessToken

# A location Google refused is asked about again sooner than a verified one: the fix
# (granting access in Business Profile) is made by a person who then wants to see it work.
REFUSED_LOCATION_RECHECK = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class BranchSpec:
    name: str
    namespace: str
    uid: str
    generation: int
    client_name: str
    location: BranchLocation
    token_secret_name: str


def parse_branch_spec(body: Mapping[str, Any]) -> BranchSpec:
    meta = body.get("metadata", {})
    spec = body.get("spec", {})
    name = str(meta.get("name", ""))
    return BranchSpec(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        client_name=str((spec.get("clientRef") or {}).get("name", "")),
        location=BranchLocation(str(spec.get("accountId", "")), str(spec.get("locationId", ""))),
        token_secret_name=str(spec.get("tokenSecretName") or default_token_secret_name(name)),
    )


@dataclasses.dataclass(frozen=True)
class LocationCheck:
    """The last answer Google gave about the location (kept in status.location)."""

    accessible: bool
    checked_at: dt.datetime
    checked_generation: int
    title: str = ""
    detail: str = ""


def location_from_status(status: Mapping[str, Any]) -> LocationCheck | None:
    location = status.get("location") or {}
    if not location.get("checkedAt"):
        return None
    return LocationCheck(
        accessible=bool(location.get("accessible", False)),
        checked_at=parse_rfc3339(str(location["checkedAt"])),
        checked_generation=int(location.get("checkedGeneration") or 0),
        title=str(location.get("title") or ""),
        detail=str(location.get("detail") or ""),
    )


def location_check_due(
    spec: BranchSpec, last: LocationCheck | None, now: dt.datetime, interval: dt.timedelta
) -> bool:
    """Once per spec change, then at most every `interval` (sooner while refused)."""
    if last is None or last.checked_generation != spec.generation:
        return True
    wait = interval if last.accessible else min(interval, REFUSED_LOCATION_RECHECK)
    return now - last.checked_at >= wait


@dataclasses.dataclass(frozen=True)
class ClientState:
    """What a Branch needs to know about its GoogleClient."""

    exists: bool
    ready: bool
    reason: str = ""
    access: AccessToken | None = None


def branch_ready(
    spec: BranchSpec, client: ClientState, location: LocationCheck | None, now: dt.datetime
) -> Condition:
    if not client.exists:
        return Condition(
            READY,
            False,
            Reason.CLIENT_NOT_READY,
            f"GoogleClient {spec.client_name!r} not found in this namespace; create it or fix "
            "spec.clientRef.name",
        )
    access = client.access
    if not client.ready or access is None or access.expires_at <= now:
        return Condition(
            READY,
            False,
            Reason.CLIENT_NOT_READY,
            f"GoogleClient {spec.client_name!r} is not ready ({client.reason or 'no token'}); "
            "see its status",
        )
    if location is None or location.checked_generation != spec.generation:
        return Condition(
            READY, False, Reason.LOCATION_CHECK_PENDING, "asking Google about the location"
        )
    if not location.accessible:
        return Condition(
            READY,
            False,
            Reason.LOCATION_NOT_ACCESSIBLE,
            f"Google refused {spec.location.location_name} ({location.detail}); check the ids "
            "and that the consenting account manages this location",
        )
    return Condition(
        READY,
        True,
        Reason.LOCATION_VERIFIED,
        f"token valid until {format_rfc3339(access.expires_at)}; location "
        f"{location.title or spec.location.location_name} verified",
    )


def branch_status_fields(
    spec: BranchSpec, client: ClientState, location: LocationCheck | None, written: bool
) -> dict[str, Any]:
    """Status fields other than conditions; None removes a field."""
    access = client.access if written else None
    return {
        "observedGeneration": spec.generation,
        "location": (
            {
                "name": spec.location.location_name,
                "title": location.title,
                "accessible": location.accessible,
                "detail": location.detail,
                "checkedAt": format_rfc3339(location.checked_at),
                "checkedGeneration": location.checked_generation,
            }
            if location is not None
            else None
        ),
        "expiresAt": format_rfc3339(access.expires_at) if access else None,
        "tokenSecretName": spec.token_secret_name if written else None,
    }
