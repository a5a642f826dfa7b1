"""A GoogleClient whose pass fails for a reason nobody foresaw gets a named Ready condition
(ReconcileFailed) and an Event; a later pass that gets through writes Ready again."""

from __future__ import annotations

import datetime as dt

from fakes import LOG, operator_with_fakes
from test_passes import NS, authorized, run_pass

from google_token_operator.conditions import AUTHORIZED, READY, Reason, find_condition
from google_token_operator.reconcile.client_failure import report_failure
from google_token_operator.reconcile.client_pass import ClientMemory


async def test_an_unforeseen_failure_is_named_on_ready_and_healed_by_the_next_pass() -> None:
    op, kube, _, _, events = operator_with_fakes()
    body = authorized(kube)
    memory = ClientMemory(status={})
    await run_pass(op, kube, memory)
    assert find_condition(memory.status["conditions"], READY)["status"] == "True"

    failure = TypeError("secret-looking text that must not be shown")
    await report_failure(op, body, memory, failure, dt.timedelta(seconds=8), LOG)

    stored = kube.resource("googleclients", NS, "acme")["status"]["conditions"]
    ready = find_condition(stored, READY)
    assert (ready["status"], ready["reason"]) == ("False", Reason.RECONCILE_FAILED)
    assert "TypeError" in ready["message"] and "0:00:08" in ready["message"]
    assert "secret-looking" not in ready["message"]  # the type and place only, never the text
    assert find_condition(stored, AUTHORIZED)["status"] == "True"  # kept as it was
    assert ("acme", True, Reason.RECONCILE_FAILED) in events.posted

    await run_pass(op, kube, memory)  # gets through again
    stored = kube.resource("googleclients", NS, "acme")["status"]["conditions"]
    assert find_condition(stored, READY)["reason"] == Reason.TOKEN_VALID


async def test_forged_conditions_are_not_carried_into_the_failure_status() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    body = authorized(kube)
    forged = {"type": "Backdoor", "status": "True", "reason": "Forged", "message": "x"}
    memory = ClientMemory(status={"conditions": [forged]})

    await report_failure(op, body, memory, ValueError(), dt.timedelta(seconds=1), LOG)

    types = {c["type"] for c in kube.resource("googleclients", NS, "acme")["status"]["conditions"]}
    assert types == {READY}
