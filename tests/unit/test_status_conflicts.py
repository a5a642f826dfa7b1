"""Status patches carry the resourceVersion their status came from: a foreign change since
makes them conflict (never overwritten), the pass reads again and runs at once, and a pass's
own writes, seen late by the watch, never conflict (no loop)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fakes import LOG, FakeKube, operator_with_fakes
from test_passes import NS, authorized, branch_body, condition

from google_token_operator.conditions import Reason
from google_token_operator.handlers import _read_again
from google_token_operator.kube import StatusConflict
from google_token_operator.reconcile.client_pass import ClientMemory, ClientPass
from google_token_operator.runtime.context import StatusBase, status_base

FORGED_READY = {
    "type": "Ready",
    "status": "False",
    "reason": "Forged",
    "message": "",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


def body_at(version: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "acme", "resourceVersion": version}, "status": status}


def test_a_body_showing_the_written_status_gives_its_own_newer_version() -> None:
    written = StatusBase({"a": 1}, "5")
    assert status_base(body_at("9", {"a": 1}), written) == StatusBase({"a": 1}, "9")


def test_a_body_showing_another_status_gives_the_written_status_and_version() -> None:
    written = StatusBase({"a": 1}, "5")
    assert status_base(body_at("3", {"a": 0}), written) == written  # the watch lags
    assert status_base(body_at("7", {"a": 2}), written) == written  # a foreign write: conflicts


def test_without_a_write_the_body_is_the_base() -> None:
    assert status_base(body_at("3", {"a": 0}), None) == StatusBase({"a": 0}, "3")


def foreign_status_write(kube: FakeKube, plural: str, name: str, **status: Any) -> None:
    """Someone else patches the status (kubectl --subresource=status, another controller)."""
    body = kube.resource(plural, NS, name)
    body["status"] = {**body["status"], **status}
    kube._stamp(body)
    kube._show_resource(plural, "MODIFIED", body)


async def test_a_client_status_changed_by_someone_else_conflicts_then_is_read_again() -> None:
    op, kube, _, clock, _ = operator_with_fakes()
    authorized(kube, refreshBefore="1h")
    live = kube.resource("googleclients", NS, "acme")
    memory = ClientMemory(dict(live["status"]), live["metadata"]["resourceVersion"])
    await ClientPass(op, live, LOG).run(memory)
    assert memory.version == live["metadata"]["resourceVersion"]
    kopf_body = copy.deepcopy(live)  # what kopf shows the daemon, from here on lagging

    foreign_status_write(kube, "googleclients", "acme", conditions=[FORGED_READY])
    clock.advance(minutes=35)  # a refresh is due: the pass has a new status to write
    with pytest.raises(StatusConflict):
        await ClientPass(op, kopf_body, LOG).run(memory)
    assert condition(live["status"], "Ready") == ("False", "Forged")  # not overwritten

    fresh = await _read_again(op, (NS, "acme"), kopf_body, memory)  # type: ignore[arg-type]
    assert memory.status["conditions"] == [FORGED_READY]
    await ClientPass(op, fresh, LOG).run(memory)
    assert condition(live["status"], "Ready") == ("True", Reason.TOKEN_VALID)
    assert memory.version == live["metadata"]["resourceVersion"]

    # The daemon's body still lags (it shows neither write): the next writes do not conflict.
    for _ in range(2):
        clock.advance(minutes=35)
        kube.writes.clear()
        await ClientPass(op, kopf_body, LOG).run(memory)
        assert ("status", (NS, "acme")) in kube.writes


async def test_a_branch_status_changed_by_someone_else_is_read_again_in_the_same_pass() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    kube.put_resource("branches", branch_body("downtown", "111"))
    memory = ClientMemory({})
    await ClientPass(op, kube.resource("googleclients", NS, "acme"), LOG).run(memory)
    branch = kube.resource("branches", NS, "downtown")
    checked = branch["status"]["location"]["checkedAt"]

    foreign_status_write(kube, "branches", "downtown", conditions=[FORGED_READY])
    clock.advance(hours=25)  # the location check is due: a new status to write
    kube.writes.clear()
    await ClientPass(op, kube.resource("googleclients", NS, "acme"), LOG).run(memory)

    assert memory.branch_failures == {}  # no back-off: read again and written at once
    assert kube.writes.count(("status", (NS, "downtown"))) == 1
    assert branch["status"]["location"]["checkedAt"] != checked
    assert condition(branch["status"], "Ready") == ("True", Reason.LOCATION_VERIFIED)
    assert google.calls["location"] == 3  # the first attempt's check, and the fresh one's
