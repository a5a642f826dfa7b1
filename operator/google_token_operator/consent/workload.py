"""The callback workload the operator runs while consent is pending: pure builders.

The callback pod faces the internet, so it gets the least of everything: no Kubernetes API
token (its ServiceAccount has no roles and none is mounted), no secret but the key that
authenticates it to the consent API, a read-only root filesystem and the "restricted" Pod
Security profile.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import MANAGED_BY
from ..consent_state.contract import (
    CALLBACK_PORT,
    CONSENT_PORT,
    HEALTHZ_PATH,
    KEY_DIR,
    KEY_FIELD,
    KEY_SECRET,
)
from ..naming import MANAGED_BY_LABEL
from ..settings import Settings

CALLBACK_NAME = "google-token-operator-callback"
OPERATOR_SERVICE = "google-token-operator"
# Numeric so Kubernetes can verify runAsNonRoot without inspecting the image.
NON_ROOT_USER = 10001

SELECTOR = {"app.kubernetes.io/name": CALLBACK_NAME}
LABELS = {
    **SELECTOR,
    "app.kubernetes.io/component": "callback",
    "app.kubernetes.io/part-of": "google-token-operator",
    MANAGED_BY_LABEL: MANAGED_BY,
}


def _metadata(namespace: str) -> dict[str, Any]:
    return {"name": CALLBACK_NAME, "namespace": namespace, "labels": dict(LABELS)}


def restricted_container_security() -> dict[str, Any]:
    """What the "restricted" Pod Security profile asks of every container."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_USER,
        "runAsGroup": NON_ROOT_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


DEFAULT_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "48Mi"},
    "limits": {"memory": "128Mi"},
}


def _scheduling(settings: Settings) -> dict[str, Any]:
    """The pod spec fields an install sets for where and from which registry the callback
    runs; none of them when unset, so the default pod is the manifests' own."""
    fields: dict[str, Any] = {
        "imagePullSecrets": [{"name": name} for name in settings.callback_image_pull_secrets],
        "nodeSelector": dict(settings.callback_node_selector),
        "tolerations": [dict(toleration) for toleration in settings.callback_tolerations],
        "priorityClassName": settings.callback_priority_class_name,
    }
    return {name: value for name, value in fields.items() if value}


def callback_pod_template(settings: Settings, namespace: str) -> dict[str, Any]:
    operator_url = f"http://{OPERATOR_SERVICE}.{namespace}.svc:{CONSENT_PORT}"
    probe = {"httpGet": {"path": HEALTHZ_PATH, "port": "http"}, "periodSeconds": 10}
    resources = settings.callback_resources
    return {
        "metadata": {"labels": dict(LABELS)},
        "spec": {
            **_scheduling(settings),
            "serviceAccountName": CALLBACK_NAME,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": NON_ROOT_USER,
                "runAsGroup": NON_ROOT_USER,
                # The key file is group-readable by this group only.
                "fsGroup": NON_ROOT_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # The one secret it holds: the key that authenticates it to the consent API.
            "volumes": [
                {
                    "name": "consent-api-key",
                    "secret": {
                        "secretName": KEY_SECRET,
                        "items": [{"key": KEY_FIELD, "path": KEY_FIELD}],
                        "defaultMode": 0o440,
                    },
                }
            ],
            "containers": [
                {
                    "name": "callback",
                    "image": settings.callback_image,
                    "args": [
                        "callback",
                        "--host",
                        "0.0.0.0",  # noqa: S104 - inside the pod, behind the Service
                        "--port",
                        str(CALLBACK_PORT),
                        "--operator-url",
                        operator_url,
                        *(["--trust-proxy"] if settings.callback_trust_proxy else []),
                    ],
                    "ports": [{"name": "http", "containerPort": CALLBACK_PORT}],
                    "volumeMounts": [
                        {"name": "consent-api-key", "mountPath": KEY_DIR, "readOnly": True}
                    ],
                    "readinessProbe": probe,
                    "livenessProbe": probe,
                    "resources": copy.deepcopy(
                        DEFAULT_RESOURCES if resources is None else resources
                    ),
                    "securityContext": restricted_container_security(),
                }
            ],
        },
    }


def callback_deployment(settings: Settings, namespace: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": callback_pod_template(settings, namespace),
        },
    }


def callback_service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(namespace),
        "spec": {
            "selector": dict(SELECTOR),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def callback_service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(namespace),
        "automountServiceAccountToken": False,
    }


def callback_objects(settings: Settings, namespace: str, wanted: bool) -> list[dict[str, Any]]:
    """Everything the callback needs; with nothing pending the Deployment is scaled to zero
    (kept, so the next consent does not wait for a new rollout object)."""
    replicas = 1 if wanted or settings.callback_always_on else 0
    return [
        callback_service_account(namespace),
        callback_service(namespace),
        callback_deployment(settings, namespace, replicas),
    ]
