"""What wakes a GoogleClient's pass: the predicates (pure, table by table), then passes over
fake edges whose watches deliver late, as a real watch does, counted as its daemon runs them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fakes import LOG, FakeKube, operator_with_fakes
from test_passes import (
    CLIENT_ID,
    NS,
    PRIVATE_LABELS,
    authorized,
    branch_body,
    client_body,
    condition,
    owner_reference,
)

from google_token_operator import GROUP
from google_token_operator.conditions import Reason
from google_token_operator.kube import StatusConflict
from google_token_operator.reconcile.client_pass import ClientMemory, ClientPass
from google_token_operator.runtime.context import Operator
from google_token_operator.views import SecretMeta, SecretView
from google_token_operator.wakeups import (
    branch_wakes,
    client_essence,
    client_wakes,
    secret_wakes,
)

ACME = (NS, "acme")
OTHER = (NS, "other")
MANAGED = {"app.kubernetes.io/managed-by": "google-token-operator"}
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


# GoogleClient ---------------------------------------------------------------------------------


def client_meta(**meta: Any) -> dict[str, Any]:
    return {"name": "acme", "namespace": NS, "generation": 1, "resourceVersion": "1", **meta}


@pytest.mark.parametrize(
    ("why", "new", "wakes"),
    [
        ("a status write (its version only)", client_meta(resourceVersion="2"), False),
        ("a label", client_meta(labels={"team": "x"}), False),
        ("another annotation", client_meta(annotations={"note": "x"}), False),
        ("a spec edit", client_meta(generation=2), True),
        ("its deletion", client_meta(deletionTimestamp="2026-01-01T00:00:00Z"), True),
        (
            "a request",
            client_meta(annotations={"google-token-operator.dev/refresh-requested-at": "1"}),
            True,
        ),
    ],
)
def test_a_googleclient_change_wakes_its_pass_only_for_what_the_pass_reads(
    why: str, new: dict[str, Any], wakes: bool
) -> None:
    assert client_wakes(client_essence(client_meta()), client_essence(new)) is wakes, why


def test_a_googleclient_seen_first_wakes_its_pass() -> None:
    assert client_wakes(None, client_essence(client_meta()))


# Branch ---------------------------------------------------------------------------------------


def branch(
    version: str = "1",
    status: dict[str, Any] | None = None,
    client: str = "acme",
    location: str = "111",
    **meta: Any,
) -> dict[str, Any]:
    """A Branch as the watch keeps it (views.snapshot)."""
    return {
        "apiVersion": "google-token-operator.dev/v1",
        "kind": "Branch",
        "metadata": {"name": "downtown", "namespace": NS, "uid": "u1", "generation": 1,
                     "deletionTimestamp": None, "resourceVersion": version, **meta},
        "spec": {"clientRef": {"name": client}, "accountId": "123", "locationId": location},
        "status": status or {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("why", "old", "new", "own", "woken"),
    [
        ("added", None, branch(), None, {ACME}),
        ("deleted", branch(), None, None, {ACME}),
        ("its version only", branch("1", READY), branch("2", READY), READY, set()),
        ("a status this process wrote", branch("1"), branch("2", READY), READY, set()),
        ("a status someone else wrote", branch("1"), branch("2", READY), None, {ACME}),
        # The pass starts from the status it wrote, whatever the watch shows.
        ("a status over the one written", branch("1"), branch("2", READY), {}, set()),
        ("a spec edit", branch("1"), branch("2", location="222", generation=2), None, {ACME}),
        (
            "a spec edit with an own status",
            branch("1", READY),
            branch("2", READY, location="222", generation=2),
            READY,
            {ACME},
        ),
        ("its deletion begins", branch("1"), branch("2", deletionTimestamp="t"), None, {ACME}),
        ("moved to another client", branch("1"), branch("2", client="other"), None, {ACME, OTHER}),
    ],
)
def test_a_branch_change_wakes_the_clients_whose_pass_reads_it(
    why: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    own: dict[str, Any] | None,
    woken: set[tuple[str, str]],
) -> None:
    assert branch_wakes(old, new, own) == woken, why


# Secret ---------------------------------------------------------------------------------------


def meta(version: str, labels: dict[str, str] | None = None, owners: tuple[str, ...] = ()) -> Any:
    return SecretMeta("s1", version, labels or {}, owners)


def data(version: str, digest: str) -> SecretView:
    return SecretView("s1", version, digest, frozenset({"access_token"}), None)


@pytest.mark.parametrize(
    ("why", "old", "new", "own", "wakes"),
    [
        ("created", None, meta("1"), False, True),
        ("deleted", meta("1"), None, False, True),
        ("new version: its data may be new", meta("1"), meta("2"), False, True),
        ("labels", meta("1"), meta("2", MANAGED), False, True),
        ("owners", meta("1", MANAGED), meta("2", MANAGED, ("o",)), False, True),
        ("managed data", data("1", "a"), data("2", "b"), False, True),
        ("managed, version only", data("1", "a"), data("2", "a"), False, False),
        ("this process's own write", data("1", "a"), data("2", "b"), True, False),
        ("this process's own create", None, meta("1", MANAGED), True, False),
    ],
)  # fmt: skip
def test_a_secret_change_wakes_its_readers_for_what_a_pass_reads_and_never_for_own_writes(
    why: str, old: Any, new: Any, own: bool, wakes: bool
) -> None:
    assert secret_wakes(old, new, own=own) is wakes, why


# Passes, with the watches late ----------------------------------------------------------------


async def passes_until_quiet(
    op: Operator, kube: FakeKube, memories: dict[str, ClientMemory]
) -> dict[str, int]:
    """Run each client's passes as its daemon does while something wakes it, the watches
    catching up only once a pass has ended; how many ran, per client."""
    passes = dict.fromkeys(memories, 0)
    wakes = {name: op.cluster.wakeups.event((NS, name)) for name in memories}
    while any(wake.is_set() for wake in wakes.values()) and sum(passes.values()) < 10:
        for name in [name for name, wake in wakes.items() if wake.is_set()]:
            wakes[name].clear()
            body = kube.resource("googleclients", NS, name)
            await ClientPass(op, body, LOG).run(memories[name])
            passes[name] += 1
            kube.deliver()
    assert not any(wake.is_set() for wake in wakes.values()), "a wake-up is left set"
    return passes


@pytest.mark.parametrize("late", [True, False], ids=["late watches", "watches at once"])
async def test_one_pass_per_change_and_no_wake_up_left_after_a_branch_fan_out(late: bool) -> None:
    op, kube, google, _, _ = operator_with_fakes()
    kube.late = late
    authorized(kube)
    for name, location in (("downtown", "111"), ("airport", "222"), ("harbour", "333")):
        kube.put_resource("branches", branch_body(name, location))
    kube.deliver()
    memory = {"acme": ClientMemory(status={})}

    op.cluster.wakeups.wake(ACME)  # the daemon's first pass
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1}
    for name in ("downtown", "airport", "harbour"):
        status = kube.resource("branches", NS, name)["status"]
        assert condition(status, "Ready") == ("True", Reason.LOCATION_VERIFIED)
    assert google.calls["refresh"] == 1

    # Each change by someone else: one pass, which leaves nothing to wake it again.
    downtown = kube.resource("branches", NS, "downtown")
    downtown["spec"]["locationId"] = "444"
    downtown["metadata"]["generation"] += 1
    kube.put_resource("branches", downtown)
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1}
    location = kube.resource("branches", NS, "downtown")["status"]["location"]
    assert location["name"] == "accounts/123/locations/444"

    airport = kube.secrets[(NS, "airport-google-token")]
    await kube.delete_secret(NS, "airport-google-token", uid=airport["metadata"]["uid"])
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1}
    restored = kube.plain(NS, "airport-google-token") or {}
    assert restored["access_token"] == (kube.plain(NS, "acme-google-token") or {})["access_token"]
    assert restored["location_name"] == "accounts/123/locations/222"

    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "rotated"})
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1}
    assert google.calls["refresh"] == 1  # nothing else was due


@pytest.mark.parametrize("late", [True, False], ids=["late watches", "watches at once"])
async def test_a_client_waiting_for_consent_runs_one_pass(late: bool) -> None:
    """The consent Secret its pass publishes is the Secret writer's own write: seen by the
    watch, it wakes nobody."""
    op, kube, _, _, _ = operator_with_fakes()
    kube.late = late
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())
    kube.deliver()
    op.cluster.wakeups.wake(ACME)

    assert await passes_until_quiet(op, kube, {"acme": ClientMemory(status={})}) == {"acme": 1}
    status = kube.resource("googleclients", NS, "acme")["status"]
    assert ("gto", status["authorization"]["stateSecretName"]) in kube.secrets


async def test_a_change_to_another_clients_secret_wakes_no_one_here() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    kube.late = True
    authorized(kube)
    kube.deliver()
    op.cluster.wakeups.wake(ACME)
    memory = {"acme": ClientMemory(status={})}
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1}

    kube.put_secret(NS, "other-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 0}


async def test_two_clients_sharing_credentials_run_one_pass_each_per_change() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    kube.late = True
    authorized(kube)
    other = kube.put_resource("googleclients", client_body() | {"metadata": {"name": "other",
                              "namespace": NS}})  # fmt: skip
    kube.put_secret(NS, "other-google-oauth", {"refresh_token": "1//o", "client_id": CLIENT_ID,
                    "scopes": "openid"}, labels=PRIVATE_LABELS | {f"{GROUP}/client": "other"},
                    ownerReferences=[owner_reference(other)])  # fmt: skip
    for name, client in (("downtown", "acme"), ("airport", "acme"), ("harbour", "other")):
        body = branch_body(name, "111")
        body["spec"]["clientRef"]["name"] = client
        kube.put_resource("branches", body)
    kube.deliver()
    memory = {"acme": ClientMemory(status={}), "other": ClientMemory(status={})}
    op.cluster.wakeups.wake(ACME)  # both daemons' first passes
    op.cluster.wakeups.wake(OTHER)

    assert await passes_until_quiet(op, kube, memory) == {"acme": 1, "other": 1}
    assert google.calls["refresh"] == 2
    for name in ("downtown", "airport", "harbour"):
        status = kube.resource("branches", NS, name)["status"]
        assert condition(status, "Ready") == ("True", Reason.LOCATION_VERIFIED)

    # The credentials both read: one pass each. A Branch moved between them: one pass each.
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "rotated"})
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1, "other": 1}
    airport = kube.resource("branches", NS, "airport")
    airport["spec"]["clientRef"]["name"] = "other"
    airport["metadata"]["generation"] += 1
    kube.put_resource("branches", airport)
    kube.deliver()
    assert await passes_until_quiet(op, kube, memory) == {"acme": 1, "other": 1}
    assert kube.plain(NS, "airport-google-token") is not None
    assert google.calls["refresh"] == 2


@pytest.mark.parametrize(
    ("change", "conflicts"),
    [("kopf's finalizer", False), ("a spec edit", True), ("a foreign status", True)],
)
async def test_a_new_clients_status_write_conflicts_only_over_what_a_pass_reads(
    change: str, conflicts: bool
) -> None:
    """kopf adds its finalizer while a new client's first pass runs: that change of the
    GoogleClient leaves the pass's status right, so it is written without a second pass."""
    op, kube, _, _, _ = operator_with_fakes()
    authorized(kube)
    live = kube.resource("googleclients", NS, "acme")
    kopf_body = copy.deepcopy(live)  # what the daemon began from
    if change == "kopf's finalizer":
        live["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    elif change == "a spec edit":
        live["spec"]["refreshBefore"] = "1h"
        live["metadata"]["generation"] += 1
    else:
        live["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}
    kube._stamp(live)
    memory = ClientMemory({}, kopf_body["metadata"]["resourceVersion"])

    if conflicts:
        with pytest.raises(StatusConflict):
            await ClientPass(op, kopf_body, LOG).run(memory)
        assert condition(live["status"], "Authorized") == ("None", "None")
    else:
        await ClientPass(op, kopf_body, LOG).run(memory)
        assert condition(live["status"], "Ready") == ("True", Reason.TOKEN_VALID)
        assert memory.version == live["metadata"]["resourceVersion"]
