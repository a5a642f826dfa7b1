"""The passes with fake edges: what one pass reads, decides and writes, call by call."""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fakes import LOG, FakeKube, operator_with_fakes

from google_token_operator.conditions import Reason, find_condition
from google_token_operator.consent.api import ConsentService
from google_token_operator.consent_state import pending as consent
from google_token_operator.consent_state.contract import Outcome
from google_token_operator.google_types import ErrorKind, GoogleError
from google_token_operator.kube import KubeError, StatusConflict
from google_token_operator.logs import Tagged
from google_token_operator.reconcile.client_pass import ClientMemory, ClientPass
from google_token_operator.reconcile.deletion import delete_client
from google_token_operator.settings import DEFAULT_SCOPES, Settings
from google_token_operator.timeutil import format_rfc3339

NS = "team"
CLIENT_ID = "cid.apps.googleusercontent.com"
PRIVATE_LABELS = {
    "app.kubernetes.io/managed-by": "google-token-operator",
    "google-token-operator.dev/client": "acme",
    "google-token-operator.dev/role": "private",
}


def client_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "google-token-operator.dev/v1",
        "kind": "GoogleClient",
        "metadata": {"name": "acme", "namespace": NS},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}, **spec},
    }


def branch_body(name: str, location: str) -> dict[str, Any]:
    return {
        "apiVersion": "google-token-operator.dev/v1",
        "kind": "Branch",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clientRef": {"name": "acme"}, "accountId": "123", "locationId": location},
    }


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True}  # fmt: skip


def authorized(kube: FakeKube, **spec: Any) -> dict[str, Any]:
    """Credentials, the GoogleClient, and a refresh token in its private Secret, as a consent
    leaves them."""
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    body = kube.put_resource("googleclients", client_body(**spec))
    kube.put_secret(
        NS,
        "acme-google-oauth",
        {"refresh_token": "1//r", "client_id": CLIENT_ID, "scopes": "openid"},
        labels=PRIVATE_LABELS,
        ownerReferences=[owner_reference(body)],
    )
    return body


async def run_pass(op: Any, kube: FakeKube, memory: ClientMemory | None = None) -> dict[str, Any]:
    body = kube.resource("googleclients", NS, "acme")
    memory = memory or ClientMemory(status=dict(body.get("status") or {}))
    await ClientPass(op, body, LOG).run(memory)
    return memory.status


def condition(status: dict[str, Any], kind: str) -> tuple[str, str]:
    found = find_condition(status.get("conditions"), kind)
    return str(found.get("status")), str(found.get("reason"))


async def test_a_refresh_pass_calls_google_once_and_writes_each_secret_once() -> None:
    op, kube, google, clock, events = operator_with_fakes()
    authorized(kube)

    status = await run_pass(op, kube)

    assert google.calls["refresh"] == 1
    assert condition(status, "Ready") == ("True", Reason.TOKEN_VALID)
    assert condition(status, "Authorized") == ("True", Reason.AUTHORIZED)
    consumer = kube.plain(NS, "acme-google-token")
    private = kube.plain(NS, "acme-google-oauth")
    assert consumer is not None and private is not None
    assert consumer["access_token"] == private["access_token"]
    assert "refresh_token" not in consumer
    assert private["refresh_token"] == "1//r"
    assert private["account_email"] == "owner@example.com"  # asked once, through userinfo
    assert sorted(kube.writes) == sorted(
        [
            ("patch", (NS, "acme-google-oauth")),
            ("create", (NS, "acme-google-token")),
            ("status", (NS, "acme")),
        ]
    )
    assert ("acme", False, Reason.TOKEN_VALID) in events.posted
    # Its own writes, seen by the watches while it ran, call for no second pass.
    assert not op.cluster.wakeups.event((NS, "acme")).is_set()

    # Nothing due, nothing changed: the next pass calls nobody and writes nothing.
    kube.writes.clear()
    clock.advance(minutes=5)
    await run_pass(op, kube, ClientMemory(status))
    assert google.calls["refresh"] == 1
    assert kube.writes == []


async def test_a_refresh_pass_after_a_retryable_error_backs_off_and_keeps_the_token() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube, refreshBefore="1h")
    status = await run_pass(op, kube)
    token = (kube.plain(NS, "acme-google-token") or {})["access_token"]

    clock.advance(minutes=35)  # within the refresh window of a 1 h token
    google.refresh_errors.append(GoogleError(ErrorKind.RETRYABLE, 503, "server_error", ""))
    status = await run_pass(op, kube, ClientMemory(status))

    assert google.calls["refresh"] == 2
    assert condition(status, "Ready") == ("True", Reason.REFRESH_DELAYED)
    assert status["failedRefreshAttempts"] == 1
    assert (kube.plain(NS, "acme-google-token") or {})["access_token"] == token


async def test_a_branch_fan_out_writes_each_branch_secret_with_one_google_token_call() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube)
    kube.put_resource("branches", branch_body("downtown", "111"))
    kube.put_resource("branches", branch_body("airport", "222"))
    google.refused_locations.add("222")

    await run_pass(op, kube)

    assert google.calls["refresh"] == 1
    assert google.calls["location"] == 2
    client_token = (kube.plain(NS, "acme-google-token") or {})["access_token"]
    downtown = kube.plain(NS, "downtown-google-token") or {}
    assert downtown["access_token"] == client_token
    assert downtown["location_name"] == "accounts/123/locations/111"
    assert condition(kube.resource("branches", NS, "downtown")["status"], "Ready") == (
        "True",
        Reason.LOCATION_VERIFIED,
    )
    assert condition(kube.resource("branches", NS, "airport")["status"], "Ready") == (
        "False",
        Reason.LOCATION_NOT_ACCESSIBLE,
    )


async def test_a_client_without_consent_publishes_one_url_and_reuses_it() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())

    status = await run_pass(op, kube)
    url = status["authorization"]["url"]
    assert condition(status, "Authorized") == ("False", Reason.CONSENT_REQUIRED)
    assert f"client_id={CLIENT_ID.split('.')[0]}" in url
    state_secrets = [key for key in kube.secrets if key[0] == "gto"]
    assert len(state_secrets) == 1

    clock.advance(minutes=1)
    again = await run_pass(op, kube, ClientMemory(status))
    assert again["authorization"]["url"] == url
    assert [key for key in kube.secrets if key[0] == "gto"] == state_secrets
    assert google.calls == {}


@pytest.mark.parametrize(("placed", "wakes"), [("acme-oauth", True), ("someone-elses", False)])
async def test_a_secret_placed_while_a_pass_runs_wakes_it_again_if_the_pass_depends_on_it(
    placed: str, wakes: bool
) -> None:
    """`kubectl apply` of a GoogleClient and its credentials Secret together: the first pass
    may find the Secret missing and only registers what it depends on at its end, so the
    Secret's arrival meanwhile must wake it again, not wait for the 10-minute recheck."""
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_resource("googleclients", client_body())
    patch_status = kube.patch_status

    async def place_then_patch(*args: Any) -> None:  # the status write ends the pass
        kube.put_secret(NS, placed, {"client_id": CLIENT_ID, "client_secret": "s3cret"})
        await patch_status(*args)

    kube.patch_status = place_then_patch  # type: ignore[method-assign]
    status = await run_pass(op, kube)
    kube.patch_status = patch_status  # type: ignore[method-assign]

    assert condition(status, "Ready") == ("False", Reason.CREDENTIALS_SECRET_NOT_FOUND)
    assert op.cluster.wakeups.event((NS, "acme")).is_set() is wakes
    if wakes:
        status = await run_pass(op, kube, ClientMemory(status))
        assert condition(status, "Ready") == ("False", Reason.CONSENT_REQUIRED)


async def test_a_missing_operator_namespace_is_named_in_the_condition() -> None:
    op, kube, _, _, _ = operator_with_fakes(Settings(operator_namespace="nowhere"))
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())

    status = await run_pass(op, kube)

    ready = find_condition(status["conditions"], "Ready")
    assert ready["reason"] == Reason.OPERATOR_NAMESPACE_MISSING
    assert (
        "'nowhere'" in ready["message"] and "kubectl create namespace nowhere" in ready["message"]
    )
    assert "authorization" not in status


async def test_a_consent_exchange_stores_the_refresh_token_once() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    body = kube.put_resource("googleclients", client_body())
    fresh = consent.draw_fresh()
    request = consent.ConsentRequest(
        NS, "acme", body["metadata"]["uid"], CLIENT_ID, "https://cb/cb", DEFAULT_SCOPES, "",
        "https://auth", dt.timedelta(minutes=15),
    )  # fmt: skip
    plan = consent.plan_consent(request, None, consent.MISSING, op.clock(), fresh, "gto")
    assert plan.write is not None
    await kube.create_secret(plan.write)
    service = ConsentService(op)

    answer = await service.complete(fresh.state, "the-code", "")

    assert answer.outcome is Outcome.AUTHORIZED
    assert answer.token_secret == "acme-google-token"
    assert google.calls["exchange"] == 1
    private = kube.plain(NS, "acme-google-oauth") or {}
    assert private["refresh_token"] == "1//refresh-from-the-code"
    assert private["account_email"] == "owner@example.com"
    # The state is spent: the same callback again changes nothing.
    again = await service.complete(fresh.state, "the-code", "")
    assert again.outcome is Outcome.INVALID_STATE
    assert google.calls["exchange"] == 1


async def test_the_delete_path_revokes_removes_secrets_and_tells_the_branches() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube, revokeOnDelete=True)
    kube.put_resource("branches", branch_body("downtown", "111"))
    await run_pass(op, kube)
    body = kube.delete_resource("googleclients", NS, "acme")

    await delete_client(op, body, LOG)

    assert google.revoked == ["1//r"]
    assert kube.plain(NS, "acme-google-oauth") is None
    assert kube.plain(NS, "acme-google-token") is None
    assert kube.plain(NS, "acme-oauth") is not None  # the user's credentials stay
    branch = kube.resource("branches", NS, "downtown")["status"]
    assert condition(branch, "Ready") == ("False", Reason.CLIENT_NOT_READY)


async def test_a_consumer_secret_deleted_or_edited_by_hand_is_restored_without_google() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    status = await run_pass(op, kube)
    original = kube.plain(NS, "acme-google-token")

    deleted = kube.secrets[(NS, "acme-google-token")]
    await kube.delete_secret(NS, "acme-google-token", uid=deleted["metadata"]["uid"])
    clock.advance(seconds=1)
    await run_pass(op, kube, ClientMemory(status))
    assert kube.plain(NS, "acme-google-token") == original

    edited = kube.secrets[(NS, "acme-google-token")]
    await kube.patch_secret(
        NS,
        "acme-google-token",
        [{"op": "replace", "path": "/data", "value": {"access_token": "ZWRpdGVk"}}],
    )
    assert edited["metadata"]["uid"] == kube.secrets[(NS, "acme-google-token")]["metadata"]["uid"]
    await run_pass(op, kube, ClientMemory(status))
    assert kube.plain(NS, "acme-google-token") == original
    assert google.calls["refresh"] == 1


async def test_a_secret_that_is_not_the_clients_is_reported_and_left_alone() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_secret(NS, "app-config", {"password": "hunter2"})
    authorized(kube, tokenSecretName="app-config")
    before = dict(kube.secrets[(NS, "app-config")])

    status = await run_pass(op, kube)

    ready = find_condition(status["conditions"], "Ready")
    assert ready["reason"] == Reason.SECRET_CONFLICT
    assert "'app-config'" in ready["message"] and "spec.tokenSecretName" in ready["message"]
    assert kube.secrets[(NS, "app-config")] == before
    assert ("patch", (NS, "app-config")) not in kube.writes
    body = kube.delete_resource("googleclients", NS, "acme")
    await delete_client(op, body, LOG)
    assert kube.secrets[(NS, "app-config")] == before


def private_state(kube: FakeKube) -> tuple[dict[str, str], str]:
    secret = kube.secrets[(NS, "acme-google-oauth")]
    return dict(secret["data"]), str(secret["metadata"]["resourceVersion"])


async def test_a_token_secret_name_of_its_own_private_secret_is_refused_and_nothing_written() -> (
    None
):
    """What the CRD refuses, the pass refuses too (a CRD installed without the rule)."""
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube, tokenSecretName="acme-google-oauth")

    status = await run_pass(op, kube)

    ready = find_condition(status["conditions"], "Ready")
    assert ready["reason"] == Reason.SECRET_CONFLICT
    assert "spec.tokenSecretName 'acme-google-oauth'" in ready["message"]
    assert "another name" in ready["message"]
    private = kube.plain(NS, "acme-google-oauth")
    assert private is not None and private["refresh_token"] == "1//r"
    assert "token.json" not in private
    assert "tokenSecretName" not in status
    written = private_state(kube)
    clock.advance(minutes=5)
    await run_pass(op, kube, ClientMemory(status))
    assert private_state(kube) == written
    assert google.revoked == []


async def test_a_forged_status_token_secret_name_never_deletes_the_private_secret() -> None:
    """A status naming the private Secret as the last consumer Secret, read by a new daemon."""
    op, kube, _, clock, _ = operator_with_fakes()
    authorized(kube)
    status = await run_pass(op, kube)
    before = private_state(kube)
    forged = {**status, "tokenSecretName": "acme-google-oauth"}

    clock.advance(minutes=1)
    status = await run_pass(op, kube, ClientMemory(forged))

    assert private_state(kube) == before
    assert ("delete", (NS, "acme-google-oauth")) not in kube.writes
    assert condition(status, "Ready") == ("True", Reason.TOKEN_VALID)
    assert status["tokenSecretName"] == "acme-google-token"


async def test_a_renamed_token_secret_replaces_the_old_consumer_secret() -> None:
    """The clean-up a forged status must not turn against the private Secret still works."""
    op, kube, _, clock, _ = operator_with_fakes()
    authorized(kube)
    status = await run_pass(op, kube)
    body = kube.resource("googleclients", NS, "acme")
    body["spec"]["tokenSecretName"] = "renamed"
    kube.put_resource("googleclients", body)

    clock.advance(minutes=1)
    status = await run_pass(op, kube, ClientMemory(status))

    assert kube.plain(NS, "acme-google-token") is None
    assert (kube.plain(NS, "renamed") or {}).get("access_token")
    assert status["tokenSecretName"] == "renamed"


async def test_the_delete_path_revokes_only_a_grant_in_its_own_private_secret() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body(revokeOnDelete=True))
    # Labelled as a private Secret, but nobody's: someone else's grant under that name.
    kube.put_secret(NS, "acme-google-oauth", {"refresh_token": "1//theirs"}, labels=PRIVATE_LABELS)

    await delete_client(op, kube.delete_resource("googleclients", NS, "acme"), LOG)

    assert google.revoked == []
    assert kube.plain(NS, "acme-google-oauth") == {"refresh_token": "1//theirs"}


async def test_a_token_whose_write_failed_is_stored_by_the_next_pass_not_asked_for_again() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    body = kube.resource("googleclients", NS, "acme")
    memory = ClientMemory(status={})
    real_patch = kube.patch_secret

    async def api_server_away(*_: Any) -> Any:
        raise KubeError(0, "ClientConnectorError", "connection refused")

    kube.patch_secret = api_server_away  # type: ignore[method-assign]
    with pytest.raises(KubeError):
        await ClientPass(op, body, LOG).run(memory)
    assert google.calls["refresh"] == 1
    assert "access_token" not in (kube.plain(NS, "acme-google-oauth") or {})

    kube.patch_secret = real_patch  # type: ignore[method-assign]
    clock.advance(seconds=5)
    await ClientPass(op, body, LOG).run(memory)
    assert google.calls["refresh"] == 1  # the token in memory was stored, not replaced
    private = kube.plain(NS, "acme-google-oauth") or {}
    assert private["access_token"] == (kube.plain(NS, "acme-google-token") or {})["access_token"]


def request(kube: FakeKube, kind: str, value: str) -> None:
    """A person sets a request annotation on the GoogleClient."""
    body = kube.resource("googleclients", NS, "acme")
    body["metadata"].setdefault("annotations", {})[f"google-token-operator.dev/{kind}"] = value


async def test_a_refresh_request_refreshes_once_per_value_and_at_most_once_a_minute() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    memory = ClientMemory(status={})
    await ClientPass(op, kube.resource("googleclients", NS, "acme"), LOG).run(memory)
    assert google.calls["refresh"] == 1
    token = (kube.plain(NS, "acme-google-token") or {})["access_token"]

    clock.advance(minutes=2)
    request(kube, "refresh-requested-at", "r1")
    await run_pass(op, kube, memory)
    assert google.calls["refresh"] == 2  # the token was fresh: refreshed anyway
    assert memory.status["handledRequests"] == {"refresh": "r1"}
    assert (kube.plain(NS, "acme-google-token") or {})["access_token"] != token

    clock.advance(minutes=2)
    await run_pass(op, kube, memory)  # the same value again: nothing
    assert google.calls["refresh"] == 2

    # A burst of 50 new values within a minute: at most one more call in that minute, and
    # the last value is handled.
    for number in range(50):
        clock.advance(seconds=1)
        request(kube, "refresh-requested-at", f"burst-{number}")
        await run_pass(op, kube, memory)
    assert google.calls["refresh"] == 3
    clock.advance(seconds=15)
    await run_pass(op, kube, memory)
    assert google.calls["refresh"] == 4
    assert memory.status["handledRequests"] == {"refresh": "burst-49"}


async def test_a_revoke_request_revokes_at_google_and_removes_every_token() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    kube.put_resource("branches", branch_body("downtown", "111"))
    kube.put_secret(NS, "unrelated", {"access_token": "someone-else's"})
    status = await run_pass(op, kube)
    assert kube.plain(NS, "downtown-google-token") is not None

    request(kube, "revoke-requested-at", "v1")
    clock.advance(seconds=5)
    status = await run_pass(op, kube, ClientMemory(status))

    assert google.revoked == ["1//r"]
    for secret in ("acme-google-oauth", "acme-google-token", "downtown-google-token"):
        assert kube.plain(NS, secret) is None, secret
    assert kube.plain(NS, "unrelated") == {"access_token": "someone-else's"}
    assert condition(status, "Authorized") == ("False", Reason.REVOKED_ON_REQUEST)
    assert status["handledRequests"] == {"revoke": "v1"}
    assert "tokenSecretName" not in status and "expiresAt" not in status
    assert status["authorization"]["url"]  # consent again from here
    assert "1//r" not in str(status)
    branch = kube.resource("branches", NS, "downtown")["status"]
    assert condition(branch, "Ready") == ("False", Reason.CLIENT_NOT_READY)

    # Handled once: the same value, later passes, a restart: no more calls, nothing comes back.
    for _ in range(2):
        clock.advance(minutes=30)
        status = await run_pass(op, kube, ClientMemory(status))
    assert google.calls["revoke"] == 1 and google.calls["refresh"] == 1
    assert kube.plain(NS, "acme-google-token") is None
    assert condition(status, "Authorized") == ("False", Reason.REVOKED_ON_REQUEST)


async def test_a_reauthorize_request_keeps_the_token_served_until_the_new_grant_is_stored() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    memory = ClientMemory(status={})
    await run_pass(op, kube, memory)
    served = (kube.plain(NS, "acme-google-token") or {})["access_token"]

    request(kube, "reauthorize-requested-at", "a1")
    await run_pass(op, kube, memory)
    url = memory.status["authorization"]["url"]
    assert condition(memory.status, "Authorized") == ("True", Reason.AUTHORIZED)
    assert (kube.plain(NS, "acme-google-token") or {})["access_token"] == served
    assert "handledRequests" not in memory.status
    clock.advance(minutes=1)
    await run_pass(op, kube, memory)
    assert memory.status["authorization"]["url"] == url  # the same URL while it waits

    # Another account consents: the new grant replaces the old one, which is revoked.
    google.account = "new-owner@example.com"
    state_secret = memory.status["authorization"]["stateSecretName"]
    state = url.split("state=")[1].split("&")[0]
    assert consent.consent_secret_name(state) == state_secret
    answer = await ConsentService(op).complete(state, "code-2", "")
    assert answer.outcome is Outcome.AUTHORIZED
    assert google.revoked == ["1//r"]
    assert (kube.plain(NS, "acme-google-oauth") or {})["refresh_token"] == "1//refresh-from-code-2"

    await run_pass(op, kube, memory)
    assert memory.status["handledRequests"] == {"reauthorize": "a1"}
    assert "authorization" not in memory.status
    assert memory.status["account"] == {"email": "new-owner@example.com"}
    assert ("gto", state_secret) not in kube.secrets  # the spent consent state is gone


async def test_a_reconsent_by_the_same_account_does_not_revoke_the_new_grant() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube)
    memory = ClientMemory(status={})
    await run_pass(op, kube, memory)  # learns the account through userinfo
    request(kube, "reauthorize-requested-at", "a1")
    await run_pass(op, kube, memory)
    state = memory.status["authorization"]["url"].split("state=")[1].split("&")[0]

    answer = await ConsentService(op).complete(state, "code-2", "")

    assert answer.outcome is Outcome.AUTHORIZED
    assert google.revoked == []  # Google would revoke the new grant with the old one
    await run_pass(op, kube, memory)
    assert memory.status["handledRequests"] == {"reauthorize": "a1"}


def three_branches(kube: FakeKube, middle_status: dict[str, Any] | None = None) -> None:
    """Two good Branches and, between them (the fan-out goes by name), the one under test."""
    kube.put_resource("branches", branch_body("a-first", "111"))
    kube.put_resource("branches", {**branch_body("b-middle", "222"), "status": middle_status or {}})
    kube.put_resource("branches", branch_body("c-last", "333"))


async def test_a_branch_checked_in_year_9999_is_checked_again_and_its_siblings_go_on() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    forged = {"name": "accounts/123/locations/222", "accessible": True,
              "checkedAt": "9999-12-31T23:59:59Z", "checkedGeneration": 1}  # fmt: skip
    three_branches(kube, {"location": forged})

    await run_pass(op, kube)

    token = (kube.plain(NS, "acme-google-token") or {})["access_token"]
    for name in ("a-first", "b-middle", "c-last"):
        assert (kube.plain(NS, f"{name}-google-token") or {})["access_token"] == token
        status = kube.resource("branches", NS, name)["status"]
        assert condition(status, "Ready") == ("True", Reason.LOCATION_VERIFIED)
    # The check from the future was not trusted: asked again, and stamped now.
    assert google.calls["location"] == 3
    checked = kube.resource("branches", NS, "b-middle")["status"]["location"]["checkedAt"]
    assert checked == format_rfc3339(clock())


async def test_a_branch_the_operator_fails_on_says_so_and_its_siblings_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube)
    three_branches(kube)
    answer = google.get_location

    async def breaks_on_222(access_token: str, location_id: str) -> dict[str, Any]:
        if location_id == "222":
            raise RuntimeError(f"nothing foresaw this: {access_token}")
        return await answer(access_token, location_id)

    monkeypatch.setattr(google, "get_location", breaks_on_222)

    await run_pass(op, kube)

    for name in ("a-first", "c-last"):
        assert kube.plain(NS, f"{name}-google-token") is not None
        status = kube.resource("branches", NS, name)["status"]
        assert condition(status, "Ready") == ("True", Reason.LOCATION_VERIFIED)
    middle = find_condition(
        kube.resource("branches", NS, "b-middle")["status"]["conditions"], "Ready"
    )
    assert (middle["status"], middle["reason"]) == ("False", Reason.RECONCILE_FAILED)
    assert "RuntimeError" in middle["message"]
    # The error's text (here, a token) is in neither the condition nor the log.
    token = (kube.plain(NS, "acme-google-token") or {})["access_token"]
    assert token not in middle["message"]
    assert token not in caplog.text
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.k8s_ref["name"] for r in failed] == ["b-middle"]  # tagged with the Branch


async def test_a_client_pass_tags_each_branch_line_with_the_branch_not_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    op, kube, _, _, _ = operator_with_fakes()
    authorized(kube)
    three_branches(kube)
    body = kube.resource("googleclients", NS, "acme")
    # As kopf's logger of the GoogleClient does: its lines carry the client's reference.
    client_logger = Tagged(LOG, "GoogleClient", NS, "acme")

    with caplog.at_level(logging.INFO):
        await ClientPass(op, body, client_logger).run(ClientMemory(status={}))

    tags = {(r.k8s_ref["kind"], r.k8s_ref["name"], r.getMessage()) for r in caplog.records}
    branches = {(kind, name) for kind, name, line in tags if "LocationVerified" in line}
    assert branches == {("Branch", "a-first"), ("Branch", "b-middle"), ("Branch", "c-last")}
    assert {(kind, name) for kind, name, line in tags if "TokenValid" in line} == {
        ("GoogleClient", "acme")
    }


async def test_the_consent_state_is_written_through_the_secret_writer_and_wakes_nobody() -> None:
    """The consent Secret is the pass's own write like the others: remembered by the writer
    (so the watch showing it calls for no second pass) and counted under its role."""
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())

    status = await run_pass(op, kube)

    key = ("gto", status["authorization"]["stateSecretName"])
    assert op.memory.wrote(key, kube.secrets[key]["metadata"]["resourceVersion"])
    written = op.metrics.registry.get_sample_value(
        "google_token_operator_secret_writes_total", {"role": "consent"}
    )
    assert written == 1
    assert not op.cluster.wakeups.event((NS, "acme")).is_set()


async def test_a_forged_state_secret_name_never_retires_another_clients_consent() -> None:
    """status.authorization.stateSecretName is not trusted: a consent state whose labels
    name another client (here a GoogleClient of the same name, recreated) is left alone."""
    op, kube, _, _, _ = operator_with_fakes()
    theirs = consent.PendingConsent(
        "hash", NS, "acme", "uid-of-another-acme", "v", "https://cb", ("openid",), "fp",
        op.clock() + dt.timedelta(minutes=5),
    )  # fmt: skip
    body = consent.consent_secret("gto", "their-state", theirs)
    await kube.create_secret(body)
    name = body["metadata"]["name"]
    authorized(kube)
    forged = {"url": "https://x", "expiresAt": "2099-01-01T00:00:00Z", "stateSecretName": name}
    kube.resource("googleclients", NS, "acme")["status"] = {"authorization": forged}

    status = await run_pass(op, kube)

    assert "authorization" not in status  # a grant is held: no consent URL is wanted
    assert ("gto", name) in kube.secrets


async def test_a_denial_is_recorded_and_survives_a_pass_whose_status_write_conflicts() -> None:
    """The consent API records the denial in status (a second writer), so the pass that the
    denial woke may hold a stale GoogleClient and meet StatusConflict: the spent consent's
    Secret must outlive that pass, or the next one would not know it was denied."""
    op, kube, _, _, events = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())
    memory = ClientMemory(status={})
    published = (await run_pass(op, kube, memory))["authorization"]["url"]
    state = dict(parse_qsl(urlsplit(published).query))["state"]
    stale = copy.deepcopy(kube.resource("googleclients", NS, "acme"))

    answer = await ConsentService(op).complete(state, "", "access_denied")

    assert answer.outcome is Outcome.DENIED
    recorded = kube.resource("googleclients", NS, "acme")["status"]["lastConsentFailure"]
    assert recorded == {"reason": Reason.CONSENT_DENIED, "time": format_rfc3339(op.clock())}
    assert ("acme", True, Reason.CONSENT_DENIED) in events.posted
    with pytest.raises(StatusConflict):
        await ClientPass(op, stale, LOG).run(memory)
    status = await run_pass(op, kube)
    assert condition(status, "Authorized") == ("False", Reason.CONSENT_DENIED)
    assert status["authorization"]["url"] != published


async def test_a_denial_stands_when_its_record_cannot_be_written() -> None:
    op, kube, _, _, events = operator_with_fakes()
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())
    published = (await run_pass(op, kube))["authorization"]["url"]
    state = dict(parse_qsl(urlsplit(published).query))["state"]

    async def unreachable(*_: object) -> None:
        raise KubeError(503, "ServiceUnavailable", "the API server is away")

    kube.get_resource = unreachable  # type: ignore[method-assign]
    answer = await ConsentService(op).complete(state, "", "access_denied")

    assert answer.outcome is Outcome.DENIED
    assert not [posted for posted in events.posted if posted[2] == Reason.CONSENT_DENIED]
