"""What this process wrote itself: the Secret writer's last write of each Secret and the last
status the passes wrote to each Branch. Made first and handed to the cluster view, the Secret
writer and the operator context when they are made: the writers record here, the view asks
here whether a watched change is the operator's own (which wakes no pass)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..naming import Key


@dataclasses.dataclass(frozen=True)
class SecretWrite:
    """What this process last wrote to a Secret: while the watch has not caught up, it is
    trusted instead of writing again."""

    uid: str
    version_before: str
    version_after: str
    data_hash: str
    role: str


class WriteMemory:
    def __init__(self) -> None:
        self._secrets: dict[Key, SecretWrite] = {}
        # Branch uid -> (status, resourceVersion) as last written by a pass.
        self._branches: dict[str, tuple[dict[str, Any], str]] = {}

    # Secrets (the Secret writer's) --------------------------------------------------------------

    def secret(self, key: Key) -> SecretWrite | None:
        return self._secrets.get(key)

    def remember_secret(self, key: Key, written: SecretWrite) -> None:
        self._secrets[key] = written

    def forget(self, key: Key) -> None:
        """The Secret is gone (deleted by anyone): what was written there is history."""
        self._secrets.pop(key, None)

    def wrote(self, key: Key, version: str) -> bool:
        """Is `version` of the Secret the one this process last wrote?"""
        written = self._secrets.get(key)
        return written is not None and written.version_after == version

    # Branch statuses (the passes') -------------------------------------------------------------

    def branch_written(self, uid: str) -> tuple[dict[str, Any], str] | None:
        return self._branches.get(uid)

    def branch_status(self, uid: str) -> Mapping[str, Any] | None:
        """The status this process last wrote to the Branch `uid`, if any."""
        written = self._branches.get(uid)
        return written[0] if written is not None else None

    def remember_branch(self, uid: str, status: dict[str, Any], version: str) -> None:
        self._branches[uid] = (status, version)

    def forget_branch(self, uid: str) -> None:
        self._branches.pop(uid, None)
