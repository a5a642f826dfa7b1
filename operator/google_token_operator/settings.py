"""Operator settings: read once from the environment into one typed, validated object.

Every variable is documented in docs/reference/settings.md; each default below says why it is
what it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .consent_state.contract import CALLBACK_PATH, CALLBACK_PORT
from .election import LeaseTimings
from .notify.url_policy import Network, parse_networks
from .timeutil import parse_duration

DEFAULT_SCOPES = ("https://www.googleapis.com/auth/business.manage",)
# Added to every consent so the operator can show which account consented.
IDENTITY_SCOPES = ("openid", "email")

_SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class SettingsError(ValueError):
    """A setting has a value the operator cannot work with; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class GoogleEndpoints:
    """Where Google lives. Each defaults to Google's real URL; tests point them at the sandbox."""

    auth_uri: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"
    revoke_uri: str = "https://oauth2.googleapis.com/revoke"
    userinfo_uri: str = "https://openidconnect.googleapis.com/v1/userinfo"
    business_account_api: str = "https://mybusinessaccountmanagement.googleapis.com"
    business_info_api: str = "https://mybusinessbusinessinformation.googleapis.com"
    business_reviews_api: str = "https://mybusiness.googleapis.com"


# Environment variable -> GoogleEndpoints field.
ENDPOINT_VARIABLES = {
    "GOOGLE_OAUTH_AUTH_URI": "auth_uri",
    "GOOGLE_OAUTH_TOKEN_URI": "token_uri",
    "GOOGLE_OAUTH_REVOKE_URI": "revoke_uri",
    "GOOGLE_USERINFO_URI": "userinfo_uri",
    "GOOGLE_BUSINESS_ACCOUNT_API": "business_account_api",
    "GOOGLE_BUSINESS_INFO_API": "business_info_api",
    "GOOGLE_BUSINESS_REVIEWS_API": "business_reviews_api",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    google: GoogleEndpoints = dataclasses.field(default_factory=GoogleEndpoints)
    # The redirect URI users register in the Google console; localhost works with
    # `kubectl port-forward` out of the box, a real install sets its public URL.
    callback_url: str = f"http://localhost:{CALLBACK_PORT}{CALLBACK_PATH}"
    # Empty means all namespaces (kopf's --all-namespaces).
    watch_namespaces: tuple[str, ...] = ()
    # Where the callback workload and the pending-consent state live.
    operator_namespace: str = "google-token-operator"
    # Image the callback Deployment runs: the operator's own image in callback mode.
    callback_image: str = "google-token-operator:latest"
    # Keep the callback Deployment up even when no consent is pending (one less cold start).
    callback_always_on: bool = False
    # Where and how the callback pods run (an install from a private registry, dedicated nodes):
    # passed through to their pod spec as they are; None resources keep the builder's own.
    callback_image_pull_secrets: tuple[str, ...] = ()
    callback_resources: Mapping[str, Any] | None = None
    callback_node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    callback_tolerations: tuple[Mapping[str, Any], ...] = ()
    callback_priority_class_name: str = ""
    # Only behind an Ingress or load balancer that sets X-Forwarded-For may the callback take
    # client addresses from it; its port is open to every source, so by default it may not.
    callback_trust_proxy: bool = False
    # After the last consent completes, keep the callback up this long (the person still
    # needs the success page; and a restart should not flap the Deployment).
    callback_idle: dt.timedelta = dt.timedelta(minutes=5)
    # How long a consent URL stays usable; Google's own codes live minutes, people take longer.
    consent_ttl: dt.timedelta = dt.timedelta(minutes=15)
    # Google's quota is per minute; once a day is enough to notice a lost location.
    location_check_interval: dt.timedelta = dt.timedelta(hours=24)
    # One slow Google answer must not hold a refresh forever.
    http_timeout: dt.timedelta = dt.timedelta(seconds=30)
    # Nor one Kubernetes call.
    kube_timeout: dt.timedelta = dt.timedelta(seconds=15)
    # Leader election (run --leader-election), client-go's defaults: a standby leads at most
    # lease + 2 x retry (19 s) after the leader stopped renewing; tokens keep 10 minutes.
    leader: LeaseTimings = dataclasses.field(default_factory=LeaseTimings)
    log_format: str = "plain"
    # Webhook notices (docs/reference/notices.md): a default receiver for every client (a
    # Secret in the operator's namespace, keys url and format); none by default.
    notify_webhook_secret: str = ""
    # A tenant's URL must not reach inside the cluster: https only, no private networks, unless
    # the installer says which are receivers.
    notify_allow_http: bool = False
    notify_allowed_networks: tuple[Network, ...] = ()
    # The first retry of a failed notice; doubled each time up to 10 minutes, for an hour.
    notify_retry_base: dt.timedelta = dt.timedelta(seconds=30)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        endpoints = GoogleEndpoints(
            **{
                field: _url(env, variable, getattr(GoogleEndpoints, field))
                for variable, field in ENDPOINT_VARIABLES.items()
            }
        )
        defaults = cls()
        return cls(
            google=endpoints,
            callback_url=_url(env, "CALLBACK_URL", defaults.callback_url),
            watch_namespaces=_namespaces(env.get("WATCH_NAMESPACES", "")),
            operator_namespace=env.get("OPERATOR_NAMESPACE") or _own_namespace(),
            callback_image=env.get("CALLBACK_IMAGE") or defaults.callback_image,
            callback_always_on=_bool(env, "CALLBACK_ALWAYS_ON", defaults.callback_always_on),
            callback_image_pull_secrets=_names(env, "CALLBACK_IMAGE_PULL_SECRETS"),
            callback_resources=_resources(env, "CALLBACK_RESOURCES"),
            callback_node_selector=_node_selector(env, "CALLBACK_NODE_SELECTOR"),
            callback_tolerations=_tolerations(env, "CALLBACK_TOLERATIONS"),
            callback_priority_class_name=_name(env, "CALLBACK_PRIORITY_CLASS_NAME"),
            callback_trust_proxy=_bool(env, "CALLBACK_TRUST_PROXY", defaults.callback_trust_proxy),
            callback_idle=_duration(env, "CALLBACK_IDLE", defaults.callback_idle),
            consent_ttl=_duration(env, "CONSENT_TTL", defaults.consent_ttl),
            location_check_interval=_duration(
                env, "LOCATION_CHECK_INTERVAL", defaults.location_check_interval
            ),
            http_timeout=_duration(env, "GOOGLE_HTTP_TIMEOUT", defaults.http_timeout),
            kube_timeout=_duration(env, "KUBE_TIMEOUT", defaults.kube_timeout),
            leader=_lease_timings(env, defaults.leader),
            log_format=_choice(env, "LOG_FORMAT", defaults.log_format, ("plain", "full", "json")),
            notify_webhook_secret=_name(env, "NOTIFY_WEBHOOK_SECRET"),
            notify_allow_http=_bool(env, "NOTIFY_ALLOW_HTTP", defaults.notify_allow_http),
            notify_allowed_networks=_networks(env, "NOTIFY_ALLOWED_NETWORKS"),
            notify_retry_base=_duration(env, "NOTIFY_RETRY_BASE", defaults.notify_retry_base),
        )


def _url(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"{variable}={value!r} is not an absolute http(s) URL; "
            f"set it like {default!r} or unset it for the default"
        )
    return value.rstrip("/") if variable.endswith("_API") else value


def _duration(env: Mapping[str, str], variable: str, default: dt.timedelta) -> dt.timedelta:
    text = env.get(variable, "").strip()
    if not text:
        return default
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise SettingsError(f"{variable}: {error}") from None
    if value <= dt.timedelta(0):
        raise SettingsError(f"{variable}={text!r} must be a positive duration such as 30s")
    return value


def _networks(env: Mapping[str, str], variable: str) -> tuple[Network, ...]:
    try:
        return parse_networks(env.get(variable, ""))
    except ValueError as error:
        raise SettingsError(f"{variable}: {error} (a comma list of CIDRs)") from None


def _lease_timings(env: Mapping[str, str], default: LeaseTimings) -> LeaseTimings:
    try:
        return LeaseTimings(
            lease_duration=_duration(env, "LEADER_LEASE_DURATION", default.lease_duration),
            renew_deadline=_duration(env, "LEADER_RENEW_DEADLINE", default.renew_deadline),
            retry_period=_duration(env, "LEADER_RETRY_PERIOD", default.retry_period),
        )
    except ValueError as error:
        raise SettingsError(f"LEADER_LEASE_DURATION/RENEW_DEADLINE/RETRY_PERIOD: {error}") from None


def _bool(env: Mapping[str, str], variable: str, default: bool) -> bool:
    text = env.get(variable, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{variable}={text!r} must be true or false")


def _choice(env: Mapping[str, str], variable: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(variable, "").strip() or default
    if value not in choices:
        raise SettingsError(f"{variable}={value!r} must be one of {', '.join(choices)}")
    return value


# A DNS subdomain, as Kubernetes names Secrets and PriorityClasses.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# What a resource quantity looks like (Kubernetes checks the rest when the Deployment is
# applied, with the pod's own message).
_QUANTITY = re.compile(r"[+-]?[0-9.]+([eE][+-]?[0-9]+|[a-zA-Z]{0,2})?")
_TOLERATION_FIELDS = {"key", "operator", "value", "effect", "tolerationSeconds"}


def _name(env: Mapping[str, str], variable: str) -> str:
    value = env.get(variable, "").strip()
    if value and not _OBJECT_NAME.fullmatch(value):
        raise SettingsError(f"{variable}={value!r} is not a Kubernetes object name")
    return value


def _names(env: Mapping[str, str], variable: str) -> tuple[str, ...]:
    names = _namespaces(env.get(variable, ""))
    for name in names:
        if not _OBJECT_NAME.fullmatch(name):
            raise SettingsError(f"{variable}: {name!r} is not a Secret name (a comma list)")
    return names


def _json(env: Mapping[str, str], variable: str, example: str) -> Any:
    text = env.get(variable, "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise SettingsError(f"{variable} is not JSON ({error}); e.g. {example}") from None


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    )


def _resources(env: Mapping[str, str], variable: str) -> Mapping[str, Any] | None:
    example = '{"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "128Mi"}}'
    value = _json(env, variable, example)
    if value is None:
        return None
    parts = (
        value.items() if isinstance(value, dict) and set(value) <= {"requests", "limits"} else ()
    )
    resources = {name: _quantities(part) for name, part in parts}
    if not parts or None in resources.values():
        raise SettingsError(
            f"{variable} must be an object of requests and/or limits, each mapping a resource "
            f"name to a quantity, e.g. {example}"
        )
    return resources


def _quantities(part: Any) -> dict[str, str] | None:
    """A resource name -> quantity map, quantities as strings (YAML may have made 1 of "1")."""
    if not isinstance(part, dict):
        return None
    quantities = {
        str(name): str(item)
        for name, item in part.items()
        if isinstance(item, str | int | float) and not isinstance(item, bool)
    }
    if len(quantities) != len(part) or not all(map(_QUANTITY.fullmatch, quantities.values())):
        return None
    return quantities


def _node_selector(env: Mapping[str, str], variable: str) -> Mapping[str, str]:
    example = '{"kubernetes.io/os": "linux"}'
    value = _json(env, variable, example)
    if value is None:
        return {}
    if not _string_map(value):
        raise SettingsError(f"{variable} must be an object of label strings, e.g. {example}")
    return dict(value)


def _tolerations(env: Mapping[str, str], variable: str) -> tuple[Mapping[str, Any], ...]:
    example = '[{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}]'
    value = _json(env, variable, example)
    if value is None:
        return ()
    if not (isinstance(value, list) and all(_toleration(item) for item in value)):
        raise SettingsError(
            f"{variable} must be a list of tolerations (key, operator, value, effect, "
            f"tolerationSeconds), e.g. {example}"
        )
    return tuple(value)


def _toleration(item: Any) -> bool:
    if not (isinstance(item, dict) and item and set(item) <= _TOLERATION_FIELDS):
        return False
    seconds = item.get("tolerationSeconds")
    texts = [item[key] for key in item if key != "tolerationSeconds"]
    return all(isinstance(text, str) for text in texts) and (
        seconds is None or (isinstance(seconds, int) and not isinstance(seconds, bool))
    )


def _namespaces(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _own_namespace() -> str:
    """In a pod, the namespace of its ServiceAccount; elsewhere the install's default."""
    try:
        with open(_SERVICE_ACCOUNT_NAMESPACE_FILE, encoding="utf-8") as file:
            return file.read().strip()
    except OSError:
        return Settings.operator_namespace
