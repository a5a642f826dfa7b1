"""The operator's internal consent API: the callback pod hands over what Google sent.

The callback pod faces the internet and holds no Kubernetes permissions and no secrets; the
operator already holds the client secret, so it validates the state, spends it (single use,
even under concurrent requests: an optimistic-concurrency patch), exchanges the code with the
PKCE verifier and the exact redirect URI, and stores the refresh token in the private Secret.
Answers never carry a token or a code.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import clients
from ..builders import private_secret
from ..google_types import ApiError, ErrorKind, GoogleError
from ..kube import KubeError
from ..naming import Key, Owner
from ..reconcile.context import Operator
from ..tokens import TokenRecord, decode_data
from . import pending as consent
from .contract import CONSENT_API_PATH, HEALTHZ_PATH, ClientRef, ConsentAnswer, Outcome

logger = logging.getLogger(__name__)

INVALID_STATE = ConsentAnswer(
    Outcome.INVALID_STATE,
    400,
    "This consent link is unknown, expired or was already used. Open the current consent URL "
    "from the GoogleClient's status.authorization.url, or run "
    "`google-token-operator authorize NAME -n NAMESPACE`.",
)


def exchange_failure(error: GoogleError, credentials_secret: str) -> ConsentAnswer:
    """What to tell the person when Google refused the code exchange."""
    if error.kind is ErrorKind.INVALID_GRANT:
        advice = "the code expired or was already used; open the consent URL again"
        status = 400
    elif error.kind is ErrorKind.INVALID_CLIENT:
        advice = (
            f"Google rejected the OAuth client; fix client_id/client_secret in Secret "
            f"{credentials_secret!r}, then consent again"
        )
        status = 502
    elif error.kind is ErrorKind.REDIRECT_URI_MISMATCH:
        advice = (
            "the redirect URI differs from the one registered in the Google console; make "
            "spec.redirectURI (or CALLBACK_URL) match it exactly, then consent again"
        )
        status = 400
    else:
        advice = "Google could not answer right now; open the consent URL again in a minute"
        status = 502
    return ConsentAnswer(Outcome.EXCHANGE_FAILED, status, f"Google answered {error}: {advice}")


class ConsentService:
    def __init__(self, op: Operator, wake: Callable[[Key], None]) -> None:
        self.op = op
        self.wake = wake

    async def complete(self, state: str, code: str, error: str) -> ConsentAnswer:
        op = self.op
        namespace = op.settings.operator_namespace
        secret_name = consent.consent_secret_name(state) if state else ""
        secret = await op.kube.get_secret(namespace, secret_name) if state else None
        if secret is None:
            return INVALID_STATE
        pending = consent.pending_from_data(secret.get("data"))
        labels = secret["metadata"].get("labels") or {}
        if (
            pending is None
            or not hmac.compare_digest(pending.state_sha256, consent.state_hash(state))
            or labels.get(consent.OUTCOME_LABEL)
            or pending.expired(op.clock())
        ):
            return INVALID_STATE
        client_key = (pending.client_namespace, pending.client_name)
        client = ClientRef(*client_key)
        outcome = consent.OUTCOME_DENIED if error or not code else "exchanging"
        if not await self._claim(secret, outcome):
            return INVALID_STATE  # a concurrent request spent it first
        self.wake(client_key)
        if outcome == consent.OUTCOME_DENIED:
            return ConsentAnswer(
                Outcome.DENIED,
                400,
                f"Consent was not given ({error or 'no code'}); nothing was stored. Open the "
                "GoogleClient's new consent URL to try again.",
                client=client,
            )
        answer = await self._exchange(pending, code, client)
        await self._mark(secret_name, str(answer.outcome))
        self.wake(client_key)
        return answer

    async def _claim(self, secret: dict[str, Any], outcome: str) -> bool:
        meta = secret["metadata"]
        try:
            await self.op.kube.patch_secret_labels(
                meta["namespace"],
                meta["name"],
                {consent.OUTCOME_LABEL: outcome},
                meta["resourceVersion"],
            )
        except KubeError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def _mark(self, secret_name: str, outcome: str) -> None:
        namespace = self.op.settings.operator_namespace
        try:
            await self.op.kube.patch_secret_labels(
                namespace, secret_name, {consent.OUTCOME_LABEL: outcome}
            )
        except KubeError as error:
            if error.status != 404:
                raise

    async def _exchange(
        self, pending: consent.PendingConsent, code: str, client: ClientRef
    ) -> ConsentAnswer:
        op = self.op
        body = await op.kube.get_resource("googleclients", client.namespace, client.name)
        if body is None or body["metadata"].get("uid") != pending.client_uid:
            return dataclasses.replace(INVALID_STATE, client=client)
        spec = clients.parse_client_spec(body, op.settings)
        secret = await op.kube.get_secret(spec.namespace, spec.credentials_secret)
        credentials = clients.credentials_from_secret(
            spec.credentials_secret, decode_data(secret.get("data") or {}) if secret else None
        )
        if isinstance(credentials, clients.CredentialsProblem):
            return ConsentAnswer(Outcome.EXCHANGE_FAILED, 502, credentials.message, client=client)
        try:
            response = await op.google.exchange_code(
                credentials, code, pending.code_verifier, pending.redirect_uri, pending.scopes
            )
        except GoogleError as error:
            return dataclasses.replace(
                exchange_failure(error, spec.credentials_secret), client=client
            )
        if not response.refresh_token:
            return ConsentAnswer(
                Outcome.NO_REFRESH_TOKEN,
                400,
                "Google sent no refresh token, which happens when the account already granted "
                "access without a consent screen. Remove this app's access at "
                "https://myaccount.google.com/permissions (or make sure prompt=consent is "
                "sent), then open the consent URL again.",
                client=client,
            )
        email = ""
        try:
            email = await op.google.userinfo_email(response.access.value)
        except ApiError as error:  # the daemon asks again later; the grant is what matters
            logger.warning(f"Could not read the account e-mail of {client}: {error}")
        record = TokenRecord(
            refresh_token=response.refresh_token,
            client_id=credentials.client_id,
            scopes=response.access.scopes,
            account_email=email,
            access=response.access,
        )
        owner = Owner("GoogleClient", spec.name, spec.namespace, spec.uid)
        await op.kube.write_secret(private_secret(owner, record))
        return ConsentAnswer(
            Outcome.AUTHORIZED,
            200,
            "Consent recorded. The operator writes a fresh access token into the Secret now.",
            client=client,
            account=email or None,
            token_secret=spec.token_secret_name,
        )


def create_app(service: ConsentService) -> web.Application:
    async def complete(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "expected a JSON body"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        answer = await service.complete(
            str(payload.get("state") or ""),
            str(payload.get("code") or ""),
            str(payload.get("error") or ""),
        )
        return web.json_response(answer.to_json())

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(CONSENT_API_PATH, complete)
    app.router.add_get(HEALTHZ_PATH, healthz)
    return app
