"""The callback's pages (pure): the operator's answer in, a status code and HTML out.

Only what the operator answered is shown (client, account, Secret name, its message), always
escaped; nothing from the query string, so a code or state can never end up on a page.
"""

from __future__ import annotations

import dataclasses
import enum
import string
from collections.abc import Mapping
from typing import Any, TypeGuard

from ..html_templates import escaped, template


class Outcome(enum.StrEnum):
    """What the operator's consent API did with what Google sent."""

    AUTHORIZED = "authorized"
    DENIED = "denied"
    INVALID_STATE = "invalid_state"
    EXCHANGE_FAILED = "exchange_failed"
    NO_REFRESH_TOKEN = "no_refresh_token"


@dataclasses.dataclass(frozen=True)
class ClientRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class OperatorAnswer:
    """The consent API's answer; `status` is the HTTP status the browser gets."""

    outcome: Outcome
    status: int
    message: str
    client: ClientRef | None = None
    account: str | None = None
    token_secret: str | None = None


@dataclasses.dataclass(frozen=True)
class Page:
    status: int
    html: str


def parse_answer(body: Any) -> OperatorAnswer | None:
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
    return OperatorAnswer(outcome, status, message, client, account or None, token_secret or None)


# The <title> and <h1> of each page; the body is templates/<key>.html.
_TITLES = {
    Outcome.AUTHORIZED: "Google account connected",
    Outcome.DENIED: "Consent denied",
    Outcome.INVALID_STATE: "This consent link is not valid",
    Outcome.EXCHANGE_FAILED: "The consent could not be completed",
    Outcome.NO_REFRESH_TOKEN: "Google sent no refresh token",
    "missing_state": "This request has no consent state",
    "unreachable": "The operator could not be reached",
}


def outcome_page(answer: OperatorAnswer) -> Page:
    client = answer.client
    values = {
        "message": escaped(answer.message),
        "for_client": (
            f' for GoogleClient <strong id="client">{escaped(str(client))}</strong>'
            if client
            else ""
        ),
        "retry": _retry_hint(client),
    }
    if answer.outcome is Outcome.AUTHORIZED:
        assert client is not None  # parse_answer guarantees it
        values |= {
            "account": escaped(answer.account or "Your Google account"),
            "client": escaped(str(client)),
            "name": escaped(client.name),
            "namespace": escaped(client.namespace),
            "token_secret": escaped(answer.token_secret or ""),
        }
    return _page(answer.outcome, answer.status, values)


def missing_state_page() -> Page:
    return _page("missing_state", 400, {"retry": _retry_hint(None)})


def operator_unreachable_page() -> Page:
    return _page("unreachable", 502, {"retry": _retry_hint(None)})


def _page(key: str, status: int, values: Mapping[str, str]) -> Page:
    body = _template(f"{key}.html").substitute(values)
    document = _template("layout.html").substitute(
        title=escaped(_TITLES[key]),
        tone="ok" if key == Outcome.AUTHORIZED else "problem",
        body=body,
    )
    return Page(status, document)


def _retry_hint(client: ClientRef | None) -> str:
    """How to get a current consent URL: with the client's names when known."""
    return _template("retry.html").substitute(
        name=escaped(client.name) if client else "NAME",
        namespace=escaped(client.namespace) if client else "NAMESPACE",
    )


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


def _template(name: str) -> string.Template:
    return template(__package__ or "", name)
