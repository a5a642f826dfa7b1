"""The callback's pages (pure): the operator's answer in, a status code and HTML out.

Only what the operator answered is shown (client, account, Secret name, its message), always
escaped; nothing from the query string, so a code or state can never end up on a page.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping

from ...consent_state.contract import ClientRef, ConsentAnswer, Outcome
from ...html_templates import escaped, template

# How long a person is asked to wait before reloading a page the callback refused for load.
RETRY_AFTER_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class Page:
    status: int
    html: str
    # Seconds for a Retry-After header; 0: none.
    retry_after: int = 0


# The <title> and <h1> of each page; the body is templates/<key>.html.
_TITLES = {
    Outcome.AUTHORIZED: "Google account connected",
    Outcome.DENIED: "Consent denied",
    Outcome.INVALID_STATE: "This consent link is not valid",
    Outcome.EXCHANGE_FAILED: "The consent could not be completed",
    Outcome.NO_REFRESH_TOKEN: "Google sent no refresh token",
    Outcome.ACCOUNT_NOT_ALLOWED: "This Google account may not be connected",
    Outcome.SCOPES_NOT_GRANTED: "Some permissions were not granted",
    "missing_state": "This request has no consent state",
    "unreachable": "The operator could not be reached",
    "busy": "Try again in a moment",
}


def outcome_page(answer: ConsentAnswer) -> Page:
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
        assert client is not None  # contract.parse_answer guarantees it
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


def busy_page() -> Page:
    """Refused for load before the code was handed over: a reload retries it."""
    page = _page("busy", 503, {})
    return dataclasses.replace(page, retry_after=RETRY_AFTER_SECONDS)


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


def _template(name: str) -> string.Template:
    return template(__package__ or "", name)
