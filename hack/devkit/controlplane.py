"""A throwaway Kubernetes control plane: real etcd and kube-apiserver on loopback ports.

TLS, static-token authentication for an ``admin`` user in ``system:masters``, RBAC
authorization and service-account token issuing (TokenRequest), as in a real cluster. There is
no controller-manager: no ``default`` ServiceAccount appears by itself, namespace deletion never
finishes and Deployments never get pods. Everything lives in one temp dir named
``gto-controlplane-*``, removed by :meth:`ControlPlane.stop`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .binaries import ensure_binaries
from .lifecycle import StartStop, owned_temp_dir, spawn, tail, terminate

# hack/check_leftovers.py looks for processes and temp dirs carrying this prefix, and reads
# OWNER_FILE in them to tell a running session's control plane from one left behind.
TEMP_PREFIX = "gto-controlplane-"
ADMIN_USER = "admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane did not start, or a request to it failed."""


def _free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """Ports the kernel just handed out on ``address``; held open together so they are distinct."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((address, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    # P-256: generated in microseconds, and both TLS and service-account tokens (ES256) take it.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_pki(
    folder: Path,
    addresses: Sequence[str] = ("127.0.0.1",),
    dns_names: Sequence[str] = ("localhost",),
) -> None:
    """CA, serving cert for ``addresses`` and ``dns_names``, the service-account key pair."""
    folder.mkdir(mode=0o700)
    now = dt.datetime.now(dt.UTC)
    # Back-dated an hour so a slightly skewed clock does not reject a brand-new cert.
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=7)

    ca_key = _ec_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gto-controlplane-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    serving_key = _ec_key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in dns_names]
                + [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = _ec_key()
    (folder / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(folder / "apiserver.key", _key_pem(serving_key))
    _write_private(folder / "sa.key", _key_pem(sa_key))
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def kubeconfig_document(server: str, ca_file: Path, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "gto-dev",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "gto-dev", "user": user}}],
        "current-context": user,
    }


# Audit every write (who, with which client, on what), never a request or response body.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete"]},
        {"level": "None"},
    ],
}


class ControlPlane(StartStop):
    """etcd + kube-apiserver for one test session or demo. Use as a context manager.

    By default the API server serves on 127.0.0.1 only. A node (``devkit.node``) needs more:
    an ``address`` its pods can reach, the ``kubernetes`` Service's IP and names in the serving
    certificate (``extra_sans``), a token per component (``users``: name -> groups) and flags
    of its own (``extra_args``, after the defaults, so they win).
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        start_timeout: float = 60.0,
        address: str = "127.0.0.1",
        extra_sans: Sequence[str] = (),
        users: Mapping[str, Sequence[str]] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.address = address
        self._extra_sans = tuple(extra_sans)
        self._extra_args = tuple(extra_args)
        self._users = {user: tuple(groups) for user, groups in (users or {}).items()}
        self._user_tokens = {user: secrets.token_urlsafe(32) for user in self._users}
        self.admin_token = secrets.token_urlsafe(32)
        self._workdir: Path | None = None
        self._api_port: int | None = None
        self._etcd_url: str | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._argv: dict[str, Sequence[str]] = {}

    # -- where things are -------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        """Folder with etcd and kube-apiserver; located (or built) on first use."""
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not started")
        return self._workdir

    @property
    def server(self) -> str:
        if self._api_port is None:
            raise ControlPlaneError("the control plane is not started")
        return f"https://{self.address}:{self._api_port}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback): tests read what is stored through it."""
        if self._etcd_url is None:
            raise ControlPlaneError("the control plane is not started")
        return self._etcd_url

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (token of ``admin``, group ``system:masters``)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def pids(self) -> list[int]:
        return [process.pid for _, process in self._processes]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._workdir is not None:
            raise ControlPlaneError("the control plane is already started")
        bin_dir = self.bin_dir
        self._workdir = owned_temp_dir(TEMP_PREFIX)
        atexit.register(self.stop)
        try:
            self._start(bin_dir, self._workdir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, bin_dir: Path, workdir: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        pki = workdir / "pki"
        sans = (self.address, *self._extra_sans)
        write_pki(
            pki,
            [name for name in sans if _is_ip(name)],
            ["localhost", *(name for name in sans if not _is_ip(name))],
        )
        self._ssl_context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        tokens = workdir / "tokens.csv"
        rows = [f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"']
        rows += [
            f'{self._user_tokens[user]},{user},{user},"{",".join(groups)}"'
            for user, groups in self._users.items()
        ]
        _write_private(tokens, "".join(f"{row}\n" for row in rows).encode())
        (workdir / "logs").mkdir()
        (workdir / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))

        # etcd serves the API server only: always loopback.
        (etcd_port,), (self._api_port,) = _free_ports(1), _free_ports(1, self.address)
        etcd_url = self._etcd_url = f"http://127.0.0.1:{etcd_port}"
        # The API server retries etcd until it answers, so both start at once.
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                # Single member: no peer traffic, so let the kernel pick an unused port.
                "--listen-peer-urls=http://127.0.0.1:0",
                # Data is thrown away at stop; fsync would only slow every write.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            _override(
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    f"--secure-port={self._api_port}",
                    f"--bind-address={self.address}",
                    f"--advertise-address={self.address}",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    # No kubelets or endpoints controllers to talk to; keeps the log quiet.
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                    # Every write, who made it and with which client: tests count them.
                    f"--audit-policy-file={workdir / 'audit-policy.json'}",
                    f"--audit-log-path={workdir / 'logs' / 'audit.log'}",
                    "--audit-log-format=json",
                ],
                self._extra_args,
            ),
        )
        self._wait_ready(deadline)
        self.write_kubeconfig(self.kubeconfig, self.admin_token, ADMIN_USER)

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        self._argv[name] = argv
        self._processes.append((name, spawn(self.workdir, name, argv)))

    def _wait_ready(self, deadline: float) -> None:
        """Until /readyz passes, the default namespace exists and RBAC's bootstrap roles are in."""
        checks = (
            "/readyz",
            "/api/v1/namespaces/default",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:basic-user",
        )
        pending = list(checks)
        last = "no answer yet"
        while pending:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with code {process.returncode} while starting; "
                        "its log ends with:\n" + tail(self.workdir / "logs" / f"{name}.log")
                    )
            try:
                status, body = self._request("GET", pending[0])
                last = f"GET {pending[0]} -> {status} {body[:200]!r}"
                if status == 200:
                    pending.pop(0)
                    continue
            except OSError as error:
                last = f"GET {pending[0]} -> {error}"
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready after {self.start_timeout:.0f} s ({last}); its log "
                    "ends with:\n" + tail(self.workdir / "logs" / "kube-apiserver.log")
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the API server, then etcd (TERM, then KILL); remove the temp dir. Idempotent."""
        atexit.unregister(self.stop)
        while self._processes:
            _, process = self._processes.pop()
            terminate(process)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._api_port = None
        self._etcd_url = None
        self._ssl_context = None

    # -- using it -----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        """One admin request; the API server is on loopback, so plain http.client is enough."""
        if self._api_port is None or self._ssl_context is None:
            raise ControlPlaneError("the control plane is not started")
        connection = http.client.HTTPSConnection(
            self.address, self._api_port, context=self._ssl_context, timeout=10
        )
        try:
            connection.request(
                method,
                path,
                body=None if body is None else json.dumps(body),
                headers={
                    "Authorization": f"Bearer {self.admin_token}",
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                },
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def restart(self, name: str, down_for: float = 0.0) -> None:
        """Stop `name` (etcd or kube-apiserver), wait `down_for` seconds, start it again with
        the same flags and data, and return once the API server answers again."""
        for index, (running, process) in enumerate(self._processes):
            if running == name:
                terminate(process)
                del self._processes[index]
                break
        else:
            raise ControlPlaneError(f"no {name} is running")
        time.sleep(down_for)
        self._spawn(name, self._argv[name])
        self._wait_ready(time.monotonic() + self.start_timeout)

    def audit_events(self) -> list[dict[str, Any]]:
        """The write requests the API server has logged so far (see AUDIT_POLICY)."""
        path = self.workdir / "logs" / "audit.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_latencies(
        self, user_agent_prefix: str, namespaces: set[str], since: dt.datetime
    ) -> list[float]:
        """Seconds from received to answered of each write logged since `since` in
        `namespaces` by a client whose User-Agent starts so, shortest first."""
        latencies = []
        for event in self.audit_events():
            received = dt.datetime.fromisoformat(event["requestReceivedTimestamp"])
            if (
                event.get("stage") == "ResponseComplete"
                and str(event.get("userAgent", "")).startswith(user_agent_prefix)
                and (event.get("objectRef") or {}).get("namespace") in namespaces
                and received >= since
            ):
                answered = dt.datetime.fromisoformat(event["stageTimestamp"])
                latencies.append((answered - received).total_seconds())
        return sorted(latencies)

    def user_token(self, user: str) -> str:
        """The static token of one of the ``users`` this control plane was made with."""
        return self._user_tokens[user]

    def mint_service_account_token(
        self,
        namespace: str,
        name: str,
        audiences: Sequence[str] | None = None,
        seconds: int = 3600,
    ) -> str:
        """A bound token for ServiceAccount ``namespace/name`` from the TokenRequest API.

        ``audiences`` default to the API server's own, so the token works against it.
        The API server refuses ``seconds`` below 600.
        """
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences is not None:
            spec["audiences"] = list(audiences)
        status, body = self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        if status != 201:
            raise ControlPlaneError(
                f"TokenRequest for {namespace}/{name} failed: {status} {body.decode()}"
            )
        token: str = json.loads(body)["status"]["token"]
        return token

    def write_kubeconfig(self, path: Path | str, token: str, user: str) -> Path:
        """Write a kubeconfig for this server that authenticates as ``user`` with ``token``.

        JSON is valid YAML, so every kubeconfig reader takes it.
        """
        path = Path(path)
        document = kubeconfig_document(self.server, self.ca_file, token, user)
        _write_private(path, json.dumps(document, indent=2).encode())
        return path

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin; the built one, else (KUBEBUILDER_ASSETS without it) PATH's."""
        kubectl = self.bin_dir / "kubectl"
        executable = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
        if executable is None:
            raise ControlPlaneError(f"no kubectl in {self.bin_dir} or on PATH")
        return subprocess.run(
            [executable, f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            input=input,
            capture_output=True,
            text=True,
        )


def _override(argv: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``argv`` + ``extra``, without the flags of ``argv`` that ``extra`` sets again.

    Appending alone is not enough: list flags such as --authorization-mode add up.
    """
    names = {flag.split("=", 1)[0] for flag in extra}
    return [arg for arg in argv if arg.split("=", 1)[0] not in names] + list(extra)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
