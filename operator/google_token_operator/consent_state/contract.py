"""The wire contract between the callback and the operator's consent API (one definition).

The callback POSTs what Google sent (`state`, `code` or `error`, `scope`) as JSON to
`CONSENT_API_PATH` on the operator; the operator answers with a `ConsentAnswer` as JSON,
whatever the HTTP status. Answers never carry a token or a code.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, TypeGuard

# The callback's own paths and port (what Google redirects to, and the probes).
CALLBACK_PATH = "/oauth2/callback"
HEALTHZ_PATH = "/healthz"
CALLBACK_PORT = 8080
# The operator's consent API: path and port; the callback finds it at OPERATOR_URL_VARIABLE.
CONSENT_API_PATH = "/consent"
CONSENT_PORT = 8082
OPERATOR_URL_VARIABLE = "OPERATOR_CONSENT_URL"
# `callback` next to `run` on one machine reaches the consent API here.
DEFAULT_OPERATOR_URL = f"http://127.0.0.1:{CONSENT_PORT}"
# The consent API answers only the callback: it sends `Authorization: Bearer <key>`, the key
# being what the operator generated into this Secret (in its namespace), mounted into the
# callback pod only, at KEY_FILE (or where KEY_FILE_VARIABLE says).
KEY_SECRET = "google-token-operator-callback-key"
KEY_FIELD = "api-key"
KEY_DIR = "/var/run/google-token-operator/consent-api"
KEY_FILE = f"{KEY_DIR}/{KEY_FIELD}"
KEY_FILE_VARIABLE = "CONSENT_API_KEY_FILE"


class Outcome(enum.StrEnum):
    """What the operator's consent API did with what Google sent."""

    AUTHORIZED = "authorized"
    DENIED = "denied"
    INVALID_STATE = "invalid_state"
    EXCHANGE_FAILED = "exchange_failed"
    NO_REFRESH_TOKEN = "no_refresh_token"
    ACCOUNT_NOT_ALLOWED = "account_not_allowed"
    SCOPES_NOT_GRANTED = "scopes_not_granted"


@dataclasses.dataclass(frozen=True)
class ClientRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class ConsentAnswer:
    """The consent API's answer; `status` is the HTTP status the browser gets."""

    outcome: Outcome
    status: int
    message: str
    client: ClientRef | None = None
    account: str | None = None
    token_secret: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "status": self.status,
            "message": self.message,
            "client": (
                {"namespace": self.client.namespace, "name": self.client.name}
                if self.client
                else None
            ),
            "account": self.account,
            "tokenSecret": self.token_secret,
        }


def parse_answer(body: Any) -> ConsentAnswer | None:
    """The operator's answer, or None when `body` is not one (another version, a proxy's page).

    An authorized answer must name the client and its consumer Secret: the page tells the
    person where the token goes.
    """
    if not isinstance(body, Mapping):
        return None
    try:
        outcome = Outcome(str(body.get("outcome")))
    except ValueError:
        return None
    status = body.get("status")
    message = body.get("message")
    account = body.get("account")
    token_secret = body.get("tokenSecret")
    if not (_is_http_status(status) and isinstance(message, str)):
        return None
    if not (_optional_text(account) and _optional_text(token_secret)):
        return None
    client = _client_ref(body.get("client"))
    if outcome is Outcome.AUTHORIZED and (client is None or not token_secret):
        return None
    return ConsentAnswer(outcome, status, message, client, account or None, token_secret or None)


def _client_ref(value: Any) -> ClientRef | None:
    if not isinstance(value, Mapping):
        return None
    namespace, name = value.get("namespace"), value.get("name")
    if isinstance(namespace, str) and isinstance(name, str) and namespace and name:
        return ClientRef(namespace, name)
    return None


def _is_http_status(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)
