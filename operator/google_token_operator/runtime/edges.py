"""The edges as the passes and the consent service use them: the Kubernetes API, Google and
webhook receivers.

Typed by what is called, not by the classes that implement it (kube.Kube, GoogleHttp), so a
unit test hands in its fakes as they are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from ..google_types import ClientCredentials, TokenResponse, Userinfo
from ..kube.informer import WatchApi
from ..notify.url_policy import WebhookTarget
from .secrets import SecretApi


class KubeApi(SecretApi, WatchApi, Protocol):
    """What the passes, the consent service, the Events and the caches ask of Kubernetes."""

    timeout: dt.timedelta  # of one call

    async def maybe(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None: ...

    async def merge_patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def get_resource(
        self, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str,
    ) -> str | None: ...

    async def apply_object(self, desired: Mapping[str, Any]) -> None: ...

    async def list_resources(
        self, plural: str, namespace: str | None, selector: str = ""
    ) -> list[dict[str, Any]]: ...

    async def list_secrets(self, namespace: str | None, selector: str) -> list[dict[str, Any]]: ...


class GoogleApi(Protocol):
    """Google's OAuth and Business Profile endpoints, as the operator calls them."""

    async def refresh(
        self, credentials: ClientCredentials, refresh_token: str, scopes: tuple[str, ...]
    ) -> TokenResponse: ...

    async def exchange_code(
        self,
        credentials: ClientCredentials,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
    ) -> TokenResponse: ...

    async def revoke(self, token: str) -> bool: ...

    async def userinfo(self, access_token: str) -> Userinfo: ...

    async def get_location(self, access_token: str, location_id: str) -> dict[str, Any]: ...


class WebhookApi(Protocol):
    """Webhook receivers, as the notices reach them (webhook_http.WebhookHttp)."""

    def check(self, url: str) -> WebhookTarget: ...

    async def post(self, url: str, body: Mapping[str, Any]) -> int: ...
