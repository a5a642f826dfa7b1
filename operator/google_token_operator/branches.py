"""Branch decisions: pure functions over the Branch, its client's state and the clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .clients import SECRET_NAME
from .conditions import READY, Condition, Reason
from .naming import BranchLocation, default_token_secret_name
from .secret_template import NO_TEMPLATE, SecretTemplate, TemplateProblem, parse_secret_template
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
    secret_template: SecretTemplate | TemplateProblem = NO_TEMPLATE


class BranchSpecError(ValueError):
    """A Branch spec the operator cannot work with; the message names the field and the fix."""


_NUMERIC_ID = re.compile(r"^[0-9]{1,30}$")


def parse_branch_spec(body: Mapping[str, Any]) -> BranchSpec:
    """The Branch's spec, checked again (the CRD checks it first) so a value admitted around
    the CRD cannot reach a Secret name, a label or a URL."""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    spec = body.get("spec") or {}
    name = str(meta.get("name", ""))
    client_ref = spec.get("clientRef") if isinstance(spec, Mapping) else None
    client_name = client_ref.get("name") if isinstance(client_ref, Mapping) else None
    if not isinstance(client_name, str) or not client_name:
        raise BranchSpecError("spec.clientRef.name is required: name a GoogleClient")
    account, location = spec.get("accountId"), spec.get("locationId")
    for field, value in (("accountId", account), ("locationId", location)):
        if not isinstance(value, str) or not _NUMERIC_ID.match(value):
            raise BranchSpecError(
                f"spec.{field} must be the numeric id, e.g. 1234567890 (without a prefix)"
            )
    token_secret = spec.get("tokenSecretName") or default_token_secret_name(name)
    if not isinstance(token_secret, str) or not SECRET_NAME.match(token_secret):
        raise BranchSpecError("spec.tokenSecretName is not a valid Secret name")
    generation = meta.get("generation")
    return BranchSpec(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=generation if isinstance(generation, int) else 0,
        client_name=client_name,
        location=BranchLocation(str(account), str(location)),
        token_secret_name=token_secret,
        secret_template=parse_secret_template(spec, "Branch"),
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
    """The last location check as stored; None (check again) when unreadable."""
    location = status.get("location")
    if not isinstance(location, Mapping) or not location.get("checkedAt"):
        return None
    generation = location.get("checkedGeneration")
    try:
        checked_at = parse_rfc3339(str(location["checkedAt"]))
    except ValueError:
        return None
    return LocationCheck(
        accessible=location.get("accessible") is True,
        checked_at=checked_at,
        checked_generation=generation if isinstance(generation, int) else 0,
        title=str(location.get("title") or ""),
        detail=str(location.get("detail") or ""),
    )


def location_check_due(
    spec: BranchSpec, last: LocationCheck | None, now: dt.datetime, interval: dt.timedelta
) -> bool:
    """Once per spec change, then at most every `interval` (sooner while refused). A check
    stamped further in the future than that (a forged or skewed status) is not trusted."""
    if last is None or last.checked_generation != spec.generation:
        return True
    wait = interval if last.accessible else min(interval, REFUSED_LOCATION_RECHECK)
    return not -wait < now - last.checked_at < wait


@dataclasses.dataclass(frozen=True)
class ClientState:
    """What a Branch needs to know about its GoogleClient."""

    exists: bool
    ready: bool
    reason: str = ""
    access: AccessToken | None = None
    account_email: str = ""  # the consenting account, for a template's {{ account_email }}
    # The grant was revoked on request: the Branch's Secret goes too.
    withdrawn: bool = False


def branch_ready(
    spec: BranchSpec,
    client: ClientState,
    location: LocationCheck | None,
    now: dt.datetime,
    secret_conflict: str = "",
) -> Condition:
    """The Branch's Ready condition. Its message does not change with each refresh (the
    token's expiry is in the Secret), so a refresh writes no Branch status."""
    if secret_conflict:
        return Condition(READY, False, Reason.SECRET_CONFLICT, secret_conflict)
    template = spec.secret_template
    if isinstance(template, TemplateProblem):
        return Condition(
            READY,
            False,
            Reason.SECRET_TEMPLATE_INVALID,
            f"{template.message}; the Branch's Secret keeps what it held before",
        )
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
        f"a valid token is in Secret {spec.token_secret_name}; location "
        f"{location.title or spec.location.location_name} verified{template.note}",
    )


def branch_status_fields(
    spec: BranchSpec, location: LocationCheck | None, written: bool
) -> dict[str, Any]:
    """Status fields other than conditions; None removes a field."""
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
        # The token's expiry lives in the Secret and the client's status, not here: otherwise
        # each refresh would write every Branch's status.
        "expiresAt": None,
        "tokenSecretName": spec.token_secret_name if written else None,
    }
