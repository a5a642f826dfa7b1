"""`google-token-operator migrate-storage`: every GoogleClient and Branch rewritten at the storage
version, then the older versions dropped from the CRDs' `status.storedVersions`.

Why: the API server keeps each object in etcd encoded at the version that was the storage
version when the object was last written, and lists in the CRD's `status.storedVersions` every
version objects may still be stored at. A version cannot leave the CRD while it is listed there,
and only a client may shorten the list. An update that changes nothing makes the API server
encode the object again at today's storage version (it skips the etcd write only when the bytes
would be equal, i.e. the object is stored at that version already).

Safe to repeat and to interrupt: `storedVersions` is shortened only after every object was
rewritten; a run that finds it already `[v1]` does nothing; an interrupted run is run again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from .. import GROUP, VERSION
from ..kube import Kube, KubeError
from ..kube.api import MERGE_PATCH, resource_path
from . import waiting

KINDS = (("googleclients", "GoogleClient"), ("branches", "Branch"))
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# Rewrites in flight at once: a migration should not crowd out the operator's own calls.
PARALLEL_WRITES = 8
PROGRESS_EVERY = 100
# How long to wait for the API server to serve the new storage version (it follows a CRD
# change through its informers, a moment after the CRD is stored).
STORAGE_SWITCH_TIMEOUT = 60.0


class MigrationError(Exception):
    """Why the migration cannot go on; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    rewritten: int = 0
    gone: int = 0  # deleted between the list and its rewrite: nothing left to move


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """The API server's fingerprint of a storage version, as its discovery publishes it in
    `storageVersionHash` (k8s.io/apiserver/pkg/endpoints/discovery: the first 8 bytes of the
    SHA-256 of "group/version/kind", base64)."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def versions_to_drop(crd: Mapping[str, Any]) -> tuple[str, ...]:
    """The versions other than ours still listed in `status.storedVersions`. Refuses a CRD that
    does not store ours yet (the new CRDs must be applied first)."""
    versions = (crd.get("spec") or {}).get("versions") or []
    storage = [str(version.get("name")) for version in versions if version.get("storage")]
    name = (crd.get("metadata") or {}).get("name", "the CRD")
    if storage != [VERSION]:
        raise MigrationError(
            f"{name} stores {', '.join(storage) or 'no version'}, not {VERSION}: apply this "
            "release's CRDs first (kubectl apply -k, or helm upgrade)"
        )
    stored = (crd.get("status") or {}).get("storedVersions") or []
    return tuple(str(version) for version in stored if version != VERSION)


async def migrate(
    kube: Kube,
    out: TextIO,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Outcome]:
    """Migrate both kinds; what was done per plural (kinds with nothing to do are absent)."""
    done: dict[str, Outcome] = {}
    for plural, kind in KINDS:
        crd_name = f"{plural}.{GROUP}"
        crd = await kube.request("GET", f"{CRD_PATH}/{crd_name}")
        old = versions_to_drop(crd)
        if not old:
            print(f"{crd_name}: stored as {VERSION} only; nothing to do", file=out)
            continue
        await _until_storage_served(kube, plural, kind, monotonic)
        started = monotonic()
        outcome = await _rewrite_all(kube, plural, out)
        await kube.request(
            "PATCH",
            f"{CRD_PATH}/{crd_name}/status",
            body={
                # A precondition: the CRD has not changed since it was read above.
                "metadata": {"resourceVersion": crd["metadata"]["resourceVersion"]},
                "status": {"storedVersions": [VERSION]},
            },
            content_type=MERGE_PATCH,
        )
        print(
            f"{crd_name}: rewrote {outcome.rewritten} at {VERSION}"
            + (f" ({outcome.gone} deleted meanwhile)" if outcome.gone else "")
            + f" in {monotonic() - started:.1f} s; storedVersions "
            f"[{', '.join((*old, VERSION))}] -> [{VERSION}]",
            file=out,
        )
        done[plural] = outcome
    return done


async def _until_storage_served(
    kube: Kube, plural: str, kind: str, monotonic: Callable[[], float]
) -> None:
    """Wait until the API server encodes new writes at our version: a rewrite before that
    would store the old version again while storedVersions is then told otherwise."""
    wanted = storage_version_hash(GROUP, VERSION, kind)
    deadline = monotonic() + STORAGE_SWITCH_TIMEOUT
    while True:
        discovery = await kube.request("GET", f"/apis/{GROUP}/{VERSION}")
        hashes = {
            resource.get("name"): resource.get("storageVersionHash")
            for resource in discovery.get("resources") or []
        }
        if hashes.get(plural) == wanted:
            return
        if monotonic() > deadline:
            raise MigrationError(
                f"the API server does not store {plural} as {VERSION} after "
                f"{STORAGE_SWITCH_TIMEOUT:.0f} s; check that the CRD was applied, then run again"
            )
        await asyncio.sleep(0.5)


async def _rewrite_all(kube: Kube, plural: str, out: TextIO) -> Outcome:
    bodies = await kube.list_resources(plural, None)
    slots = asyncio.Semaphore(PARALLEL_WRITES)
    rewritten = gone = 0

    async def rewrite(body: Mapping[str, Any]) -> None:
        nonlocal rewritten, gone
        meta = body["metadata"]
        async with slots:
            moved = await _rewrite(kube, plural, str(meta["namespace"]), str(meta["name"]), body)
        if moved:
            rewritten += 1
            if rewritten % PROGRESS_EVERY == 0:
                print(f"{plural}: {rewritten}/{len(bodies)} rewritten", file=out, flush=True)
        else:
            gone += 1

    await asyncio.gather(*(rewrite(body) for body in bodies))
    return Outcome(rewritten, gone)


async def _rewrite(
    kube: Kube, plural: str, namespace: str, name: str, body: Mapping[str, Any]
) -> bool:
    """Write the object back unchanged; False when it was deleted meanwhile. A conflict means
    someone else wrote it since the list, which encoded it at the storage version too; it is
    read and written again all the same, so the count stays honest."""
    path = resource_path(plural, namespace, name)
    current: Mapping[str, Any] | None = body
    while current is not None:
        try:
            await kube.request("PUT", path, body=current)
            return True
        except KubeError as error:
            if error.status == 404:
                return False
            if error.status != 409:
                raise
        current = await kube.maybe("GET", path)
    return False


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"Rewrite every GoogleClient and Branch (all namespaces) at {GROUP}/{VERSION}, then "
        f"set the CRDs' status.storedVersions to [{VERSION}]. Run it after upgrading the CRDs; "
        "safe to run again or after an interruption."
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    async def work(kube: Kube, _namespace: str) -> int:
        try:
            await migrate(kube, out)
        except MigrationError as error:
            waiting.complain("migrate-storage", str(error))
            return waiting.FAILED
        return 0

    return waiting.run_with_kube(
        "migrate-storage",
        None,
        work,
        lambda _namespace: "cannot migrate the stored GoogleClients and Branches",
        **waiting.kube_flags(args),
    )
