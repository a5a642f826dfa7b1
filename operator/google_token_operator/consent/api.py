"""The operator's internal consent API: the callback pod hands over what Google sent.

The callback pod faces the internet and holds no Kubernetes permissions and no secrets; the
operator already holds the client secret, so it validates the state, spends it (single use,
even under concurrent requests: an optimistic-concurrency patch), exchanges the code with the
PKCE verifier and the exact redirect URI, and stores the refresh token in the private Secret.
Answers never carry a token or a code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import clients, grant_checks, policy
from ..builders import private_secret
from ..conditions import Reason
from ..consent_state import pending as consent
from ..consent_state.contract import (
    CONSENT_API_PATH,
    HEALTHZ_PATH,
    ClientRef,
    ConsentAnswer,
    Outcome,
)
from ..google_types import ApiError, ErrorKind, GoogleError, Userinfo, clean
from ..grant_sharing import REVOKE_SKIPPED
from ..kube import KubeError
from ..kube.api import MERGE_PATCH, secret_path
from ..kube.informer import Informer
from ..naming import ROLE_PRIVATE, Key, Owner, private_secret_name
from ..ownership import conflict_message
from ..runtime.context import Operator
from ..runtime.kept_grants import may_revoke
from ..runtime.secrets import WriteResult, Written
from ..timeutil import format_rfc3339
from ..tokens import TokenRecord, decode_data, record_from_data
from .admission import Admission, pending_states
from .apikey import KeyCheck, Throttle, same_secret

logger = logging.getLogger(__name__)

# Storing a fresh refresh token is retried this often, 0.2 s, 0.4 s, ... apart.
STORE_ATTEMPTS = 6
STORE_BACKOFF = dt.timedelta(seconds=0.2)
STORE_BACKOFF_CAP = dt.timedelta(seconds=10)
# What a hand-over may carry: Google's states and codes are far shorter.
MAX_FIELD = 2048
MAX_BODY = 16 * 1024

UNAVAILABLE = ConsentAnswer(
    Outcome.EXCHANGE_FAILED,
    503,
    "The operator could not reach the Kubernetes API to complete the consent. Nothing was "
    "stored; open the consent URL again in a minute.",
)

INVALID_STATE = ConsentAnswer(
    Outcome.INVALID_STATE,
    400,
    "This consent link is unknown, expired or was already used. Open the current consent URL "
    "from the GoogleClient's status.authorization.url, or run "
    "`google-token-operator authorize NAME -n NAMESPACE`.",
)


def exchange_failure(error: GoogleError, credentials_secret: str) -> tuple[ConsentAnswer, str]:
    """What to tell the person when Google refused the code exchange, and the reason that
    status.lastConsentFailure records."""
    if error.kind is ErrorKind.INVALID_GRANT:
        advice = "the code expired or was already used; open the consent URL again"
        status, reason = 400, Reason.CONSENT_CODE_INVALID
    elif error.kind is ErrorKind.INVALID_CLIENT:
        advice = (
            f"Google rejected the OAuth client; fix client_id/client_secret in Secret "
            f"{credentials_secret!r}, then consent again"
        )
        status, reason = 502, Reason.CLIENT_CREDENTIALS_INVALID
    elif error.kind is ErrorKind.REDIRECT_URI_MISMATCH:
        advice = (
            "the redirect URI differs from the one registered in the Google console; make "
            "spec.redirectURI (or CALLBACK_URL) match it exactly, then consent again"
        )
        status, reason = 400, Reason.REDIRECT_URI_MISMATCH
    else:
        advice = "Google could not answer right now; open the consent URL again in a minute"
        status, reason = 502, Reason.CONSENT_EXCHANGE_FAILED
    message = f"Google answered {error}: {advice}"
    return ConsentAnswer(Outcome.EXCHANGE_FAILED, status, message), reason


class ConsentService:
    def __init__(self, op: Operator) -> None:
        self.op = op

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
            or not consent.is_state_of(
                labels, pending.client_namespace, pending.client_name, pending.client_uid
            )
            or not same_secret(pending.state_sha256, consent.state_hash(state))
            or labels.get(consent.OUTCOME_LABEL)
            or pending.expired(op.clock())
        ):
            return INVALID_STATE
        client = ClientRef(pending.client_namespace, pending.client_name)
        outcome = consent.OUTCOME_DENIED if error or not code else consent.OUTCOME_EXCHANGING
        if not await self._claim(secret, outcome):
            return INVALID_STATE  # a concurrent request spent it first
        if outcome == consent.OUTCOME_DENIED:
            answer = ConsentAnswer(
                Outcome.DENIED,
                400,
                f"Consent was not given ({clean(error, 80) or 'no code'}); nothing was stored. "
                "Open the GoogleClient's new consent URL to try again.",
                client=client,
            )
            try:
                body = await op.kube.get_resource("googleclients", client.namespace, client.name)
            except KubeError as failure:  # the denial stands; only its record is missing
                logger.warning(f"Could not record the denied consent of {client}: {failure}")
                return answer
            if body is not None and body["metadata"].get("uid") == pending.client_uid:
                await self._record_failure(body, Reason.CONSENT_DENIED, answer.message)
            return answer
        answer, label = await self._exchange(pending, code, client)
        await self._mark(secret_name, label)
        return answer

    async def _record_failure(
        self,
        body: Mapping[str, Any],
        reason: str,
        message: str,
        rejected_credentials: str = "",
        missing: tuple[str, ...] = (),
    ) -> None:
        """Leave a trace of a consent that stored nothing: status.lastConsentFailure (reason,
        time), an Event and a log line; with `rejected_credentials` (the credentials Secret's
        version Google rejected) the client is blocked as after a refused refresh. Best
        effort: the person's page says the same, whatever happens here."""
        meta = body["metadata"]
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        logger.warning(f"Consent for GoogleClient {name} failed ({reason}): {message}")
        self.op.events.post(body, True, reason, f"Consent failed: {message}")
        patch: dict[str, Any] = {
            "lastConsentFailure": {"reason": reason, "time": format_rfc3339(self.op.clock())}
        }
        if missing:  # read back only with its reason (ScopesNotGranted)
            patch["lastConsentFailure"]["missingScopes"] = list(missing)
        if rejected_credentials:
            patch |= {"credentialsResourceVersion": rejected_credentials, "lastFailure": message}
        try:
            await self.op.kube.patch_status(
                "googleclients", str(meta.get("namespace")), str(meta.get("name")), patch, ""
            )
        except KubeError as error:
            logger.warning(f"Could not record the failed consent of {name}: {error}")

    async def _claim(self, secret: dict[str, Any], outcome: str) -> bool:
        """Spend the state: a compare-and-swap on the Secret's version, so of two concurrent
        callbacks with the same state exactly one wins."""
        meta = secret["metadata"]
        try:
            await self.op.kube.merge_patch_secret(
                meta["namespace"],
                meta["name"],
                {
                    "metadata": {
                        "resourceVersion": meta["resourceVersion"],
                        "labels": {consent.OUTCOME_LABEL: outcome},
                    }
                },
            )
        except KubeError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def _mark(self, secret_name: str, outcome: str) -> None:
        namespace = self.op.settings.operator_namespace
        await self.op.kube.maybe(
            "PATCH",
            secret_path(namespace, secret_name),
            body={"metadata": {"labels": {consent.OUTCOME_LABEL: outcome}}},
            content_type=MERGE_PATCH,
        )

    async def _exchange(
        self, pending: consent.PendingConsent, code: str, client: ClientRef
    ) -> tuple[ConsentAnswer, str]:
        """The answer for the person, and the outcome label for the consent Secret."""
        op = self.op
        body = await op.kube.get_resource("googleclients", client.namespace, client.name)
        if body is None or body["metadata"].get("uid") != pending.client_uid:
            answer = dataclasses.replace(INVALID_STATE, client=client)
            return answer, str(answer.outcome)
        try:
            spec = clients.parse_client_spec(body, op.settings)
        except clients.SpecError as error:
            return ConsentAnswer(Outcome.EXCHANGE_FAILED, 400, str(error), client=client), "failed"
        secret = await op.kube.get_secret(spec.namespace, spec.credentials_secret)
        credentials = clients.credentials_from_secret(
            spec.credentials_secret, decode_data(secret.get("data") or {}) if secret else None
        )
        if isinstance(credentials, clients.CredentialsProblem):
            answer = ConsentAnswer(Outcome.EXCHANGE_FAILED, 502, credentials.message, client=client)
            await self._record_failure(body, credentials.reason, credentials.message)
            return answer, str(answer.outcome)
        try:
            response = await op.google.exchange_code(
                credentials, code, pending.code_verifier, pending.redirect_uri, pending.scopes
            )
        except GoogleError as error:
            answer, reason = exchange_failure(error, spec.credentials_secret)
            rejected = ""
            if reason == Reason.CLIENT_CREDENTIALS_INVALID and secret is not None:
                # As after a refresh Google refused: no new consent until the Secret changes.
                rejected = str(secret["metadata"].get("resourceVersion") or "")
            await self._record_failure(body, reason, answer.message, rejected)
            return dataclasses.replace(answer, client=client), str(answer.outcome)
        now = op.clock()
        if not response.refresh_token:
            return ConsentAnswer(
                Outcome.NO_REFRESH_TOKEN,
                400,
                "Google sent no refresh token, which happens when the account already granted "
                "access without a consent screen. Remove this app's access at "
                "https://myaccount.google.com/permissions (or make sure prompt=consent is "
                "sent), then open the consent URL again.",
                client=client,
            ), str(Outcome.NO_REFRESH_TOKEN)
        account = Userinfo("", False, "")
        try:
            account = await op.google.userinfo(response.access.value)
        except ApiError as error:  # the daemon asks again later; the grant is what matters
            logger.warning(f"Could not read the account e-mail of {client}: {error}")
        record = TokenRecord(
            refresh_token=response.refresh_token,
            client_id=credentials.client_id,
            scopes=response.access.scopes,
            account_email=account.email,
            access=response.access,
            consented_at=now,
            grant_expires_at=grant_checks.grant_expiry(now, response.grant_lifetime),
        )
        missing = grant_checks.missing_scopes(spec.scopes, response.access.scopes)
        if missing:
            revoked = await self._revoke(body, record, "partial")
            message = grant_checks.scopes_not_granted_message(missing)
            await self._record_failure(body, Reason.SCOPES_NOT_GRANTED, message, missing=missing)
            return ConsentAnswer(
                Outcome.SCOPES_NOT_GRANTED,
                403,
                f"{message}. Nothing was stored and {_revoked_text(revoked)}.",
                client=client,
                account=account.email or None,
            ), consent.OUTCOME_SCOPES_NOT_GRANTED
        refusal = clients.account_refusal(spec, account)
        if refusal:
            revoked = await self._revoke(body, record)
            return ConsentAnswer(
                Outcome.ACCOUNT_NOT_ALLOWED,
                403,
                f"{refusal}. Nothing was stored and {_revoked_text(revoked)}. Consent again "
                "with an allowed account.",
                client=client,
            ), consent.OUTCOME_ACCOUNT_NOT_ALLOWED
        owner = Owner("GoogleClient", spec.name, spec.namespace, spec.uid)
        private_key = (spec.namespace, private_secret_name(spec.name))
        previous = await self._replaced_record(private_key, owner)
        written = await self._store(owner, record)
        if written is None:
            revoked = await self._revoke(body, record, "unstored")
            answer = ConsentAnswer(
                Outcome.EXCHANGE_FAILED,
                503,
                "Google granted access, but the operator could not store it in the cluster "
                f"(the Kubernetes API did not answer in time). Nothing was stored and "
                f"{_revoked_text(revoked)}: open the consent URL again to start over.",
                client=client,
            )
            return answer, str(answer.outcome)
        if written.outcome is Written.CONFLICT:
            revoked = await self._revoke(body, record, "unstored")
            message = conflict_message(
                private_secret_name(spec.name), written.why, "name for this GoogleClient"
            )
            answer = ConsentAnswer(
                Outcome.EXCHANGE_FAILED,
                409,
                f"{message}. Of the access just granted: {_revoked_text(revoked)}; consent "
                "again once the Secret is out of the way.",
                client=client,
            )
            return answer, str(answer.outcome)
        replaced = clients.grant_to_retire(previous, record)
        if replaced and previous is not None:
            await self._revoke(body, previous, "replaced")
        return ConsentAnswer(
            Outcome.AUTHORIZED,
            200,
            "Consent recorded. The operator writes a fresh access token into the Secret now.",
            client=client,
            account=account.email or None,
            token_secret=spec.token_secret_name,
        ), str(Outcome.AUTHORIZED)

    async def _replaced_record(self, private_key: Key, owner: Owner) -> TokenRecord | None:
        """The grant a re-consent replaces, read before the write so it can be retired
        after it; None when there is none or it cannot be read (then none is retired)."""
        try:
            return record_from_data(
                await self.op.secrets.read_owned(private_key, owner, ROLE_PRIVATE)
            )
        except KubeError as error:
            logger.warning(f"Could not read the grant a consent replaces: {error}")
            return None

    async def _store(self, owner: Owner, record: TokenRecord) -> WriteResult | None:
        """Write the refresh token into the private Secret, retrying what may heal (a
        concurrent writer, an API server away for a moment) with a fresh read each time.
        None when it could not be stored within STORE_ATTEMPTS.

        The refresh token exists only in this process's memory from Google's answer until
        this write lands: the one window in which a crash loses it (the person then sees the
        operator as unreachable and consents again)."""
        desired = private_secret(owner, record)
        for attempt in range(STORE_ATTEMPTS):
            try:
                return await self.op.secrets.ensure(desired, owner, ROLE_PRIVATE)
            except KubeError as error:
                if not (error.retryable or error.status in (409, 422)):
                    raise
                logger.warning(f"Storing the consent of {owner.namespace}/{owner.name}: {error}")
                # Not jittered: one hand-over, not a herd.
                delay = policy.backoff_delay(
                    attempt + 1, None, 1.0, STORE_BACKOFF, STORE_BACKOFF_CAP
                )
                await asyncio.sleep(delay.total_seconds())
        return None

    async def _revoke(
        self, body: Mapping[str, Any], record: TokenRecord, which: str = "refused"
    ) -> bool:
        """A grant the operator will not keep must not stay alive at Google, unless a
        GoogleClient it serves (this one included) keeps a grant of the same OAuth client and
        account: revoking would end that one too (Event RevokeSkipped). Whether it was
        revoked (or tried: a failure is logged)."""
        meta = body["metadata"]
        holder = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        what = f"the {which} grant"
        try:
            verdict = await may_revoke(self.op, holder, record, what, kept_by_holder=False)
        except KubeError as error:  # not knowing, a GoogleClient's grant is not risked
            logger.warning(f"Did not revoke {what} of {'/'.join(holder)}: {error}")
            return False
        if not verdict.revoke:
            logger.info(f"GoogleClient {'/'.join(holder)}: {verdict.message}")
            self.op.events.post(body, False, REVOKE_SKIPPED, verdict.message)
            return False
        try:
            await self.op.google.revoke(record.refresh_token)
        except GoogleError as error:
            logger.warning(f"Could not revoke {what} of {'/'.join(holder)}: {error}")
        return True


def _revoked_text(revoked: bool) -> str:
    if revoked:
        return "the access just granted was revoked at Google"
    return (
        "the access just granted was not revoked at Google (another grant of the same OAuth "
        "client and account is kept for a GoogleClient, and a revoke would end it too)"
    )


def create_app(
    service: ConsentService,
    key_check: KeyCheck,
    throttle: Throttle | None = None,
    admission: Admission | None = None,
) -> web.Application:
    """The consent API: authenticated (the callback's key), always JSON; states it issued are
    always taken, anything else is throttled. Without `admission` it watches the pending
    states itself while it runs."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_json_errors])
    gate = admission
    if gate is None:
        namespace = service.op.settings.operator_namespace
        states = pending_states(service.op.kube, namespace)
        gate = Admission(states, namespace, throttle or Throttle())
        app.cleanup_ctx.append(_following(states))

    async def complete(request: web.Request) -> web.Response:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        try:
            authenticated = scheme == "Bearer" and await key_check.accepts(presented.strip())
        except KubeError as error:
            logger.warning(f"Could not read the callback key: {error}")
            return _refusal(503, "the operator cannot check the callback's key right now")
        if not authenticated:
            return _refusal(401, "the consent API answers the callback only")
        try:
            payload = await request.json()
        except ValueError:
            return _refusal(400, "expected a JSON body")
        if not isinstance(payload, dict):
            return _refusal(400, "expected a JSON object")
        fields = [payload.get(name) or "" for name in ("state", "code", "error")]
        if not all(isinstance(value, str) and len(value) <= MAX_FIELD for value in fields):
            # No state the operator issued looks like this; answered without a read.
            return web.json_response(INVALID_STATE.to_json())
        with gate.admit(fields[0]) as admitted:
            if not admitted:
                return _refusal(429, "too many consent hand-overs; try again in a moment")
            try:
                answer = await service.complete(*fields)
            except KubeError as error:
                logger.warning(f"A consent hand-over failed: {error}")
                answer = UNAVAILABLE
        return web.json_response(answer.to_json())

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_post(CONSENT_API_PATH, complete)
    app.router.add_get(HEALTHZ_PATH, healthz)
    return app


def _following(states: Informer[int]) -> Callable[[web.Application], AsyncIterator[None]]:
    """Watch the pending states while the application runs."""

    async def follow(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(states.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return follow


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (too large, wrong method, no such path) as JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        return _refusal(error.status, error.reason)


def _refusal(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
