"""The client pass with a webhook, over fake edges: a pass decides which notices are due and
the webhook edge sends them; what the receiver accepted is recorded in status and never sent
again; a refused URL is named in the Notified condition and nothing is sent."""

from __future__ import annotations

from fakes import FakeWebhooks, operator_with_fakes
from test_passes import NS, authorized, condition, run_pass

from google_token_operator.conditions import Reason
from google_token_operator.google_types import ErrorKind, GoogleError
from google_token_operator.reconcile.client_pass import ClientMemory
from google_token_operator.settings import Settings

HOOK = "https://hooks.example.com/services/s3cr3t"
NOTIFY = {"webhookSecretRef": {"name": "hook"}}


def revoked() -> GoogleError:
    return GoogleError(ErrorKind.INVALID_GRANT, 400, "invalid_grant", "Token has been revoked")


async def test_a_lost_grant_is_sent_once_retried_after_a_failure_and_recorded() -> None:
    webhooks = FakeWebhooks(answers=[500])
    op, kube, google, clock, events = operator_with_fakes(webhooks=webhooks)
    kube.put_secret(NS, "hook", {"url": HOOK})
    authorized(kube, notify=NOTIFY, refreshBefore="1h")
    status = await run_pass(op, kube)
    assert condition(status, "Notified") == ("True", Reason.NOTICES_DELIVERED)
    assert webhooks.sent == []

    clock.advance(minutes=35)
    google.refresh_errors.append(revoked())
    status = await run_pass(op, kube, ClientMemory(status))
    assert [body["type"] for _, body in webhooks.sent] == ["AuthorizationLost"]
    assert condition(status, "Notified") == ("False", Reason.NOTICE_DELIVERY_FAILING)
    pending = status["notices"]["pending"]
    assert pending[0]["attempts"] == 1 and status["notices"]["delivered"] == []
    assert ("acme", True, Reason.NOTICE_DELIVERY_FAILED) in events.posted

    clock.advance(seconds=29)  # not due yet: nothing sent
    status = await run_pass(op, kube, ClientMemory(status))
    assert len(webhooks.sent) == 1
    clock.advance(seconds=1)
    status = await run_pass(op, kube, ClientMemory(status))
    assert len(webhooks.sent) == 2 and webhooks.sent[0][1] == webhooks.sent[1][1]
    assert status["notices"]["delivered"] == [pending[0]["id"]]
    assert condition(status, "Notified") == ("True", Reason.NOTICES_DELIVERED)
    assert op.metrics.notifications.labels("delivered")._value.get() == 1

    # A new process (the status is all it has) sends nothing again.
    clock.advance(minutes=5)
    await run_pass(
        op, kube, ClientMemory(dict(kube.resource("googleclients", NS, "acme")["status"]))
    )
    assert len(webhooks.sent) == 2
    body = webhooks.sent[0][1]
    assert body["command"] == f"google-token-operator authorize acme -n {NS}"
    assert "s3cr3t" not in str(status) and all("s3cr3t" not in str(e) for e in events.posted)


async def test_a_refused_url_is_named_and_nothing_is_sent() -> None:
    webhooks = FakeWebhooks()
    op, kube, google, clock, _ = operator_with_fakes(webhooks=webhooks)
    kube.put_secret(NS, "hook", {"url": "https://169.254.169.254/latest/meta-data"})
    authorized(kube, notify=NOTIFY, refreshBefore="1h")
    status = await run_pass(op, kube)
    clock.advance(minutes=35)
    google.refresh_errors.append(revoked())
    status = await run_pass(op, kube, ClientMemory(status))
    found = condition(status, "Notified")
    assert found == ("False", Reason.WEBHOOK_URL_REFUSED)
    assert webhooks.sent == [] and len(status["notices"]["pending"]) == 1
    message = next(c for c in status["conditions"] if c["type"] == "Notified")["message"]
    assert "link-local" in message and "meta-data" not in message


async def test_a_missing_webhook_secret_and_a_bad_spec_are_named() -> None:
    op, kube, _, _, _ = operator_with_fakes(webhooks=FakeWebhooks())
    authorized(kube, notify=NOTIFY)
    status = await run_pass(op, kube)
    assert condition(status, "Notified") == ("False", Reason.WEBHOOK_SECRET_NOT_FOUND)
    kube.resource("googleclients", NS, "acme")["spec"]["notify"] = {"after": "soon"}
    status = await run_pass(op, kube, ClientMemory(status))
    assert condition(status, "Notified") == ("False", Reason.NOTIFY_SPEC_INVALID)


async def test_without_any_webhook_there_is_no_notified_condition_nor_state() -> None:
    op, kube, _, _, _ = operator_with_fakes(webhooks=FakeWebhooks())
    authorized(kube)
    status = await run_pass(op, kube)
    assert condition(status, "Notified") == ("None", "None")
    assert "notices" not in status


async def test_the_operator_default_webhook_serves_a_client_without_its_own() -> None:
    webhooks = FakeWebhooks()
    settings = Settings(operator_namespace="gto", notify_webhook_secret="default-hook")
    op, kube, google, clock, _ = operator_with_fakes(settings, webhooks=webhooks)
    kube.put_secret("gto", "default-hook", {"url": HOOK, "format": "slack"})
    authorized(kube, refreshBefore="1h")
    status = await run_pass(op, kube)
    assert condition(status, "Notified") == ("True", Reason.NOTICES_DELIVERED)
    clock.advance(minutes=35)
    google.refresh_errors.append(revoked())
    await run_pass(op, kube, ClientMemory(status))
    [(url, body)] = webhooks.sent
    assert url == HOOK and "Google authorization lost" in body["text"]
