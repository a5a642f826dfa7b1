"""Where the Kubernetes API is and how to authenticate: in-cluster, else a kubeconfig.

Read once at start into a `KubeConfig`; credentials that expire (a projected ServiceAccount
token, an exec plugin's token) are fetched again by `KubeConfig.auth_headers` when due.
Supported kubeconfig users: token, tokenFile, client certificate and key (files or data),
and exec plugins that return a token (EKS, GKE, OIDC helpers). Not username/password: the API
server dropped basic auth in 1.19.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# A projected ServiceAccount token rotates; re-read it this often (client-go does so too).
TOKEN_FILE_REREAD = 60.0
# Ask an exec plugin again this long before its token expires.
EXEC_EARLY = dt.timedelta(minutes=1)
EXEC_TIMEOUT = 60.0


class ConfigError(Exception):
    """No usable cluster configuration; the message says what is missing."""


@dataclasses.dataclass
class _TokenFile:
    path: Path
    token: str = ""
    read_at: float = 0.0

    def current(self) -> str:
        if not self.token or time.monotonic() - self.read_at > TOKEN_FILE_REREAD:
            self.token = self.path.read_text().strip()
            self.read_at = time.monotonic()
        return self.token


@dataclasses.dataclass
class _ExecPlugin:
    """A kubeconfig `exec` user: a command that prints an ExecCredential."""

    command: str
    args: list[str]
    env: dict[str, str]
    api_version: str
    token: str = ""
    expires_at: dt.datetime | None = None

    def current(self, now: dt.datetime) -> tuple[str, dt.datetime | None]:
        if not self.token or (self.expires_at is not None and now >= self.expires_at - EXEC_EARLY):
            self._run()
        return self.token, self.expires_at

    def _run(self) -> None:
        exec_info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": {}}
        result = subprocess.run(
            [self.command, *self.args],
            env={**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(exec_info)},
            capture_output=True,
            text=True,
            timeout=EXEC_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(
                f"the kubeconfig's exec plugin {self.command!r} failed (exit "
                f"{result.returncode}): {result.stderr.strip()[:300]}"
            )
        status = (json.loads(result.stdout) or {}).get("status") or {}
        if not status.get("token"):
            raise ConfigError(
                f"the kubeconfig's exec plugin {self.command!r} returned no token (client "
                "certificates from exec plugins are not supported); use a token-based plugin"
            )
        self.token = str(status["token"])
        expiry = status.get("expirationTimestamp")
        self.expires_at = (
            dt.datetime.fromisoformat(str(expiry).replace("Z", "+00:00")) if expiry else None
        )


@dataclasses.dataclass
class KubeConfig:
    server: str
    ssl_context: ssl.SSLContext | None  # None: plain http (a local proxy)
    default_namespace: str = "default"
    token: str = ""
    token_file: _TokenFile | None = None
    exec_plugin: _ExecPlugin | None = None
    # For kopf's own login: the same files.
    ca_path: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    insecure: bool = False

    def auth_headers(self) -> dict[str, str]:
        token = self.current_token()[0]
        return {"Authorization": f"Bearer {token}"} if token else {}

    def current_token(self) -> tuple[str, dt.datetime | None]:
        """The bearer token to send now, and when it expires (None: not known)."""
        if self.exec_plugin is not None:
            return self.exec_plugin.current(dt.datetime.now(dt.UTC))
        if self.token_file is not None:
            return self.token_file.current(), None
        return self.token, None


def load_config(
    environ: Mapping[str, str] | None = None,
    serviceaccount: Path = IN_CLUSTER_DIR,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> KubeConfig:
    """In a pod: the ServiceAccount. Elsewhere: $KUBECONFIG (first file wins), ~/.kube/config.
    As with kubectl, `kubeconfig` (a file) replaces both, and `context` replaces the
    kubeconfig's current context; either one means a kubeconfig, even in a pod."""
    env = os.environ if environ is None else environ
    explicit = kubeconfig is not None or context is not None
    if not explicit and env.get("KUBERNETES_SERVICE_HOST") and (serviceaccount / "token").exists():
        return _in_cluster(env, serviceaccount)
    listed = kubeconfig if kubeconfig is not None else env.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    if not paths:
        default = Path("~/.kube/config").expanduser()
        paths = [default] if default.exists() else []
    if not paths:
        raise ConfigError(
            "no Kubernetes configuration: not in a pod, KUBECONFIG is not set and "
            "~/.kube/config does not exist"
        )
    return _from_kubeconfig(paths, context)


def _in_cluster(env: Mapping[str, str], serviceaccount: Path) -> KubeConfig:
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    ca = str(serviceaccount / "ca.crt")
    namespace_file = serviceaccount / "namespace"
    return KubeConfig(
        server=f"https://{host}:{port}",
        ssl_context=ssl.create_default_context(cafile=ca),
        default_namespace=(
            namespace_file.read_text().strip() if namespace_file.exists() else "default"
        ),
        token_file=_TokenFile(serviceaccount / "token"),
        ca_path=ca,
    )


def _from_kubeconfig(paths: list[Path], context_name: str | None = None) -> KubeConfig:
    current: str | None = None
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "contexts": {},
        "clusters": {},
        "users": {},
    }
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
        current = current or document.get("current-context")
        for section, field in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in document.get(section) or []:
                named[section].setdefault(str(item.get("name")), (item.get(field) or {}, path))
    if context_name is not None:
        if context_name not in named["contexts"]:
            raise ConfigError(
                f"the kubeconfig ({', '.join(map(str, paths))}) has no context {context_name!r}"
            )
        current = context_name
    if not current or current not in named["contexts"]:
        raise ConfigError(f"the kubeconfig ({', '.join(map(str, paths))}) has no current context")
    context, _ = named["contexts"][current]
    try:
        cluster, cluster_file = named["clusters"][str(context.get("cluster"))]
    except KeyError:
        raise ConfigError(f"context {current!r} names no known cluster") from None
    user_name = str(context.get("user"))
    user, user_file = named["users"].get(user_name, ({}, paths[0]))
    if (user.get("username") or user.get("password")) and not (
        set(user) & {"token", "tokenFile", "exec", "client-certificate", "client-certificate-data"}
    ):
        raise ConfigError(
            f"kubeconfig user {user_name!r} has only a username and password: basic auth is "
            "not supported (the API server dropped it in 1.19); use a token, client "
            "certificate or exec plugin"
        )
    return _build(cluster, cluster_file, user, user_file, str(context.get("namespace") or ""))


def _build(
    cluster: Mapping[str, Any],
    cluster_file: Path,
    user: Mapping[str, Any],
    user_file: Path,
    namespace: str,
) -> KubeConfig:
    server = str(cluster.get("server") or "")
    if not server:
        raise ConfigError("the kubeconfig's cluster has no server")
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    ca_path = _file(cluster, "certificate-authority", cluster_file)
    certificate_path = _file(user, "client-certificate", user_file)
    key_path = _file(user, "client-key", user_file)
    context: ssl.SSLContext | None = None
    if server.startswith("https://"):
        context = ssl.create_default_context(cafile=ca_path)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if certificate_path and key_path:
            context.load_cert_chain(certificate_path, key_path)
    exec_spec = user.get("exec")
    return KubeConfig(
        server=server.rstrip("/"),
        ssl_context=context,
        default_namespace=namespace or "default",
        token=str(user.get("token") or ""),
        token_file=_TokenFile(Path(str(user["tokenFile"]))) if user.get("tokenFile") else None,
        exec_plugin=(
            _ExecPlugin(
                command=str(exec_spec["command"]),
                args=[str(arg) for arg in exec_spec.get("args") or []],
                env={str(e["name"]): str(e["value"]) for e in exec_spec.get("env") or []},
                api_version=str(exec_spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
            )
            if exec_spec
            else None
        ),
        ca_path=ca_path,
        certificate_path=certificate_path,
        private_key_path=key_path,
        insecure=insecure,
    )


@functools.cache
def _data_folder() -> tempfile.TemporaryDirectory[str]:
    """A private folder for inline certificates and keys, removed when the process ends."""
    return tempfile.TemporaryDirectory(prefix="gto-kubeconfig-")


def _file(section: Mapping[str, Any], key: str, relative_to: Path) -> str | None:
    """A file the kubeconfig names (relative to the kubeconfig), or its inline `-data` written
    to a private temporary file (ssl takes files only)."""
    if section.get(key):
        path = Path(str(section[key])).expanduser()
        return str(path if path.is_absolute() else relative_to.parent / path)
    data = section.get(f"{key}-data")
    if not data:
        return None
    digest = hashlib.sha256(str(data).encode()).hexdigest()[:16]
    target = Path(_data_folder().name) / f"{key}-{digest}.pem"
    if not target.exists():
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(base64.b64decode(str(data)))
    return str(target)
