"""A single-node Kubernetes cluster on this machine, the way hack/local-up-cluster.sh runs one.

The control plane (:class:`~devkit.controlplane.ControlPlane`: etcd, kube-apiserver) plus
kube-controller-manager, kube-scheduler, a kubelet on containerd + runc, the CNI bridge plugin,
kube-proxy (iptables mode: Service IPs work, from pods and from this host), CoreDNS (the
``cluster.local`` names pods use) and kube-router's firewall alone (NetworkPolicy enforced with
iptables and ipsets; test-only, see docs/design/2026-12-06-network-policy-enforcer.md) — all
local processes, all binaries pinned and built by
:mod:`devkit.binaries`, every image built locally by :mod:`devkit.images` and imported, never
pulled. Needs root, and Debian's runc, CNI plugins, iptables and conntrack (`make node-deps`).

What it touches on the host, and gives back at :meth:`Node.stop`:

- a bridge ``gto-br0`` (the node's address, 10.244.0.1, is its gateway address), the pods'
  veths and network namespaces;
- iptables: kube-proxy's, kube-router's and the kubelet's ``KUBE-*`` chains, and
  ``GTO-NODE-EGRESS`` (mangle table), which keeps pods from reaching anything beyond this
  machine (they need nothing beyond it);
- kube-router's ipsets (``KUBE-*``);
- sysctls the kubelet, the bridge plugin and Service routing set (restored to what they were);
- cgroups under ``gto-node`` in each hierarchy;
- mounts and files under one temp dir ``gto-node-*``, ``/var/log/containers`` symlinks and the
  shims' sockets in ``/run/containerd/s``.

Only one node per machine (a lock in the cache): the bridge, the cgroups and the iptables chains
have fixed names. ``hack/check_leftovers.py`` checks that all of it is gone after a run.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from . import images
from .binaries import ensure_binaries, ensure_netpol_binaries, ensure_node_binaries
from .controlplane import (
    SERVICE_CLUSTER_IP_RANGE,
    ControlPlane,
    _ec_key,
    _key_pem,
    _write_private,
)
from .lifecycle import StartStop, owned_temp_dir, owner_running, spawn, tail, terminate

TEMP_PREFIX = "gto-node-"
NODE_NAME = "gto-node"
BRIDGE = "gto-br0"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
# The first address of the Service range: the `kubernetes` Service.
KUBERNETES_SERVICE_IP = "10.0.0.1"
CLUSTER_DOMAIN = "cluster.local"
CGROUP_PARENT = "gto-node"
EGRESS_CHAIN = "GTO-NODE-EGRESS"
# Chains that the kubelet (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, ...), kube-proxy and
# kube-router (KUBE-*) and this module (GTO-*) create.
CHAIN_PREFIXES = ("KUBE-", "GTO-")
# kube-router's chains and ipsets (KUBE-SRC-*, KUBE-DST-*): it leaves them at exit.
ENFORCER_CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
IPSET_PREFIX = "KUBE-"
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")
# What the kubelet itself keeps in iptables (and ip6tables) while it runs, and leaves at exit.
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
# One per machine, whatever the checkout or cache: the bridge, cgroups and chains are shared.
NODE_LOCK = Path("/run/lock/google-token-operator-node.lock")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = Path("/usr/sbin/runc")
# sysctl -> the value the node sets (None: the kubelet sets it). All restored at stop.
SYSCTLS = {
    # Pods reach Services and each other through this host.
    "net/ipv4/ip_forward": "1",
    # Service traffic between two pods on the bridge must pass kube-proxy's NAT rules.
    "net/bridge/bridge-nf-call-iptables": "1",
    # Set by the kubelet itself (protectKernelDefaults: false), as on every node.
    "vm/overcommit_memory": None,
    "vm/panic_on_oom": None,
    "kernel/panic": None,
    "kernel/panic_on_oops": None,
    "kernel/keys/root_maxkeys": None,
    "kernel/keys/root_maxbytes": None,
}
STOP_POD_TIMEOUT = 90.0
_SCHEDULER_CONFIG = "kubescheduler.config.k8s.io/v1"


class NodeError(RuntimeError):
    """The node did not start or stop; the message says why (and ends with a log if useful)."""


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _run(*argv: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


class Node(StartStop):
    """A whole single-node cluster. Use as a context manager; :attr:`kubeconfig` is the admin's."""

    def __init__(self, *, start_timeout: float = 180.0, lock_timeout: float = 0.0) -> None:
        """``lock_timeout``: how long to wait for another node on this machine to stop."""
        self.start_timeout = start_timeout
        self.lock_timeout = lock_timeout
        self.control_plane: ControlPlane | None = None
        self.start_seconds = 0.0
        self.stop_seconds = 0.0
        # Where the stop's time went, phase by phase.
        self.stop_phases: dict[str, float] = {}
        # What the safety net at stop found and removed: empty when the orderly stop was enough.
        self.swept: list[str] = []
        self._workdir: Path | None = None
        self._lock: IO[str] | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._bin: Path | None = None
        self._kube_bin: Path | None = None
        self._netpol_bin: Path | None = None
        self._saved_sysctls: dict[str, str] = {}

    # -- where things are -------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise NodeError("the node is not started")
        return self._workdir

    @property
    def kubeconfig(self) -> Path:
        return self._plane().kubeconfig

    @property
    def kubectl_path(self) -> Path:
        if self._kube_bin is None:
            raise NodeError("the node is not started")
        return self._kube_bin / "kubectl"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def _plane(self) -> ControlPlane:
        if self.control_plane is None:
            raise NodeError("the node is not started")
        return self.control_plane

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._plane().kubectl(*args, check=check, input=input)

    def ctr(self, *args: str, check: bool = True) -> str:
        """containerd's own client, in the namespace the kubelet's containers live in."""
        assert self._bin is not None
        return _run(
            str(self._bin / "ctr"),
            f"--address={self.containerd_socket}",
            "--namespace=k8s.io",
            *args,
            check=check,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._workdir is not None:
            raise NodeError("the node is already started")
        started = time.monotonic()
        _check_host()
        self._bin = ensure_node_binaries()
        self._kube_bin = ensure_binaries()
        self._netpol_bin = ensure_netpol_binaries()
        archives = images.ensure_node_images()
        self._lock = _take_node_lock(self.lock_timeout)
        self._workdir = owned_temp_dir(TEMP_PREFIX)
        (self._workdir / "logs").mkdir()
        atexit.register(self.stop)
        try:
            self._start(archives, time.monotonic() + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _start(self, archives: dict[images.Image, Path], deadline: float) -> None:
        self._setup_host_network()
        pki = self.workdir / "pki"
        _write_kubelet_client_pki(pki)
        users = {
            f"system:node:{NODE_NAME}": ("system:nodes",),
            "system:kube-controller-manager": (),
            "system:kube-scheduler": (),
            "system:kube-proxy": (),
            "gto-node:coredns": (),
            "gto-node:kube-router": (),
        }
        self.control_plane = ControlPlane(
            self._kube_bin,
            address=NODE_IP,
            extra_sans=[
                KUBERNETES_SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            ],
            users=users,
            extra_args=[
                # The `kubernetes` Service gets its endpoint (this address): pods reach the API.
                "--endpoint-reconciler-type=lease",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # For logs, exec and port-forward through the kubelet, at its address (no DNS
                # knows the node's name).
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            ],
        ).start()
        kubeconfigs = self.workdir / "kubeconfigs"
        kubeconfigs.mkdir()
        for user in users:
            self.control_plane.write_kubeconfig(
                kubeconfigs / f"{user.replace(':', '_')}.kubeconfig",
                self.control_plane.user_token(user),
                user,
            )
        self._start_containerd(deadline)
        for archive in archives.values():
            self.ctr("images", "import", str(archive))
        self._start_controllers(kubeconfigs)
        self._start_kubelet(kubeconfigs, pki)
        self._start_kube_proxy(kubeconfigs)
        self._start_coredns(kubeconfigs)
        self._wait_ready(deadline)
        # Once the Node object exists: kube-router reads its address from it at start.
        self._start_network_policy(kubeconfigs, deadline)

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self._processes.append((name, spawn(self.workdir, name, argv, env)))

    def _check_processes(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                raise NodeError(
                    f"{name} exited with code {process.returncode}; its log ends with:\n"
                    + tail(self.workdir / "logs" / f"{name}.log")
                )

    def _wait(self, what: str, done: Callable[[], bool], deadline: float) -> None:
        while not done():
            self._check_processes()
            if time.monotonic() > deadline:
                raise NodeError(f"timed out waiting for {what}")
            time.sleep(0.5)

    # -- host network ---------------------------------------------------------------------------

    def _setup_host_network(self) -> None:
        for name, value in SYSCTLS.items():
            path = _sysctl_path(name)
            if path.exists():
                self._saved_sysctls[name] = path.read_text().strip()
                if value is not None:
                    path.write_text(value)
        (self.workdir / "sysctls.json").write_text(json.dumps(self._saved_sysctls))
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Pods talk to each other, to Services and to this host; nothing of theirs is forwarded
        # beyond the bridge (this machine may reach only its package registries).
        # (IPv4 only: the pods have no IPv6 address.) In mangle, which runs before filter:
        # kube-router's filter chains come first in FORWARD and ACCEPT what policies allow.
        _run("iptables", "-w", "-t", "mangle", "-N", EGRESS_CHAIN)
        _run("iptables", "-w", "-t", "mangle", "-A", EGRESS_CHAIN, "-o", BRIDGE, "-j", "RETURN")
        _run("iptables", "-w", "-t", "mangle", "-A", EGRESS_CHAIN, "-j", "DROP")
        _run("iptables", "-w", "-t", "mangle", "-I", "FORWARD", "-i", BRIDGE, "-j", EGRESS_CHAIN)
        for hierarchy in _cgroup_hierarchies():
            parent = hierarchy / CGROUP_PARENT
            parent.mkdir(exist_ok=True)
            # A new cpuset starts with no CPUs and no memory nodes: copy the root's.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (hierarchy / knob).exists():
                    (parent / knob).write_text((hierarchy / knob).read_text())

    # -- containerd ---------------------------------------------------------------------------

    def _start_containerd(self, deadline: float) -> None:
        assert self._bin is not None
        root = self.workdir / "containerd"
        (root / "root").mkdir(parents=True)
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (cni_conf / "10-gto-bridge.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        config = root / "config.toml"
        config.write_text(self._containerd_config())
        # The shim is found on PATH, runc by its configured path.
        env = {**os.environ, "PATH": f"{self._bin}:{os.environ.get('PATH', '')}"}
        self._spawn("containerd", [str(self._bin / "containerd"), f"--config={config}"], env)
        self._wait("containerd's socket", self.containerd_socket.exists, deadline)
        self._wait(
            "containerd to answer",
            lambda: bool(self.ctr("version", check=False).strip()),
            deadline,
        )

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "gto-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # No NAT: pods reach nothing beyond this host (see EGRESS_CHAIN).
                    "ipMasq": False,
                    # A pod may reach itself through its own Service.
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                }
            ],
        }

    def _containerd_config(self) -> str:
        root = self.workdir / "containerd"
        cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
        return f"""\
version = 3
root = "{root / "root"}"
state = "{root / "state"}"
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{root / "containerd.sock.ttrpc"}"

[plugins.'io.containerd.internal.v1.opt']
  path = "{root / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  # Built here from Kubernetes' pause.c; nothing is ever pulled.
  sandbox = "{images.PAUSE.node_name}"

[{cri_runtime}]
  # Network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # Never below containerd's own OOM score: lowering one needs CAP_SYS_RESOURCE, which root
  # lacks on this build machine (runc fails "oom_score_adj: Permission denied" otherwise,
  # for every pod sandbox, whose default is -998).
  restrict_oom_score_adj = true

[{cri_runtime}.containerd]
  default_runtime_name = "runc"

[{cri_runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri_runtime}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  # runc's state with the node's, not in /run/containerd/runc.
  Root = "{root / "runc"}"
  # cgroupfs: this host has no systemd managing cgroups.
  SystemdCgroup = false

[{cri_runtime}.cni]
  bin_dirs = ["{CNI_BIN_DIR}"]
  conf_dir = "{self.workdir / "cni" / "net.d"}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    # -- Kubernetes components --------------------------------------------------------------------

    def _start_controllers(self, kubeconfigs: Path) -> None:
        assert self._kube_bin is not None and self._bin is not None
        plane = self._plane()
        pki = plane.workdir / "pki"
        self._spawn(
            "kube-controller-manager",
            [
                str(self._bin / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs / 'system_kube-controller-manager.kubeconfig'}",
                # Each controller under its own ServiceAccount, with its bootstrap role.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                # Published as the kube-root-ca.crt ConfigMap that pods' API clients trust.
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--leader-elect=false",
                "--secure-port=0",
                "--controllers=*",
            ],
        )
        config = self.workdir / "kube-scheduler.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": _SCHEDULER_CONFIG,
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(kubeconfigs / "system_kube-scheduler.kubeconfig")
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._spawn(
            "kube-scheduler",
            [str(self._bin / "kube-scheduler"), f"--config={config}", "--secure-port=0"],
        )

    def _start_kubelet(self, kubeconfigs: Path, pki: Path) -> None:
        assert self._bin is not None
        root = self.workdir / "kubelet"
        root.mkdir()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host is cgroup v1; Kubernetes 1.35+ refuses it unless told otherwise.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_PARENT}",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": NODE_IP,
            "port": _free_port(NODE_IP),
            "readOnlyPort": 0,
            "healthzPort": 0,
            # Only the API server (its client certificate, from this CA) talks to the kubelet.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki / "kubelet-ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDNS": [NODE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            # Pods get the cluster's resolver only, not this host's search domains.
            "resolvConf": "",
            "podLogsDir": str(self.workdir / "pod-logs"),
            # The images cannot be pulled again: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A busy build machine must not evict the pods under test.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "failSwapOn": False,
            # Its own score stays: lowering it needs CAP_SYS_RESOURCE (see containerd's config).
            "oomScoreAdj": 0,
            "serializeImagePulls": False,
        }
        config_file = self.workdir / "kubelet.yaml"
        config_file.write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            [
                str(self._bin / "kubelet"),
                f"--config={config_file}",
                f"--kubeconfig={kubeconfigs / f'system_node_{NODE_NAME}.kubeconfig'}",
                f"--root-dir={root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
            ],
        )

    def _start_kube_proxy(self, kubeconfigs: Path) -> None:
        assert self._bin is not None
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfigs / "system_kube-proxy.kubeconfig")},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "oomScoreAdj": 0,
            "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{_free_port('127.0.0.1')}",
            "metricsBindAddress": f"127.0.0.1:{_free_port('127.0.0.1')}",
            # NodePorts only on the node's address, never on this machine's own network.
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # Leave the host's conntrack and route_localnet sysctls alone.
            "iptables": {"localhostNodePorts": False, "minSyncPeriod": "1s"},
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }
        config_file = self.workdir / "kube-proxy.yaml"
        config_file.write_text(json.dumps(config, indent=2))
        self._spawn("kube-proxy", [str(self._bin / "kube-proxy"), f"--config={config_file}"])

    def _start_coredns(self, kubeconfigs: Path) -> None:
        assert self._bin is not None
        # What CoreDNS's kubernetes plugin reads, and nothing more.
        rbac = _read_only_rbac(
            "gto-node:coredns",
            [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        )
        self.kubectl("apply", "-f", "-", input=json.dumps(rbac))
        kubeconfig = kubeconfigs / "gto-node_coredns.kubeconfig"
        corefile = self.workdir / "Corefile"
        # Cluster names only. No `forward`: a name outside the cluster is refused, so no pod's
        # lookup ever leaves this machine.
        corefile.write_text(
            f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig} gto-node:coredns
        pods insecure
    }}
    cache 5
}}
"""
        )
        self._spawn("coredns", [str(self._bin / "coredns"), f"-conf={corefile}"])

    def _start_network_policy(self, kubeconfigs: Path, deadline: float) -> None:
        """kube-router's firewall alone: no routing, no Service proxy (kube-proxy's), no CNI."""
        assert self._netpol_bin is not None
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                _read_only_rbac(
                    "gto-node:kube-router",
                    [
                        {
                            "apiGroups": [""],
                            "resources": ["pods", "namespaces", "nodes", "services", "endpoints"],
                            "verbs": ["get", "list", "watch"],
                        },
                        {
                            "apiGroups": ["discovery.k8s.io"],
                            "resources": ["endpointslices"],
                            "verbs": ["list", "watch"],
                        },
                        {
                            "apiGroups": ["networking.k8s.io"],
                            "resources": ["networkpolicies"],
                            "verbs": ["list", "watch"],
                        },
                    ],
                )
            ),
        )
        self._spawn(
            "kube-router",
            [
                str(self._netpol_bin / "kube-router"),
                f"--kubeconfig={kubeconfigs / 'gto-node_kube-router.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                "--enable-ipv6=false",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # Its health and metrics servers would listen on this machine's addresses.
                "--health-port=0",
                "--metrics-port=0",
            ],
        )

        def enforcing() -> bool:
            rules = _run("iptables-save", "-t", "filter", check=False)
            return "-j KUBE-ROUTER-FORWARD" in rules

        # Its first full sync puts its chains in place: from then on, policies are enforced.
        self._wait("kube-router's firewall chains", enforcing, deadline)

    def _wait_ready(self, deadline: float) -> None:
        def node_ready() -> bool:
            result = self.kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            return result.stdout == "True"

        def default_service_account() -> bool:
            return self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0

        def dns() -> bool:
            name = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
            return resolve(name, NODE_IP) == [KUBERNETES_SERVICE_IP]

        self._wait("the node to be Ready", node_ready, deadline)
        self._wait(
            "the controller-manager (ServiceAccount default)", default_service_account, deadline
        )
        self._wait("CoreDNS to answer for the kubernetes Service", dns, deadline)

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Remove every pod through the kubelet, stop everything, give back what was touched.

        Idempotent. The orderly part (pods deleted through the API, so the kubelet tears down
        their containers, volumes and networks) should leave nothing; a safety net then
        removes what did not go and records it in :attr:`swept`.
        """
        atexit.unregister(self.stop)
        if self._workdir is None:
            return
        started = mark = time.monotonic()

        def phase(name: str) -> None:
            nonlocal mark
            self.stop_phases[name] = time.monotonic() - mark
            mark = time.monotonic()

        try:
            self._stop_pods()
        finally:
            phase("pods deleted through the kubelet")
            by_name = dict(self._processes)
            for name in (
                "kube-controller-manager",
                "kube-scheduler",
                "coredns",
                "kube-proxy",
                "kube-router",
            ):
                if name in by_name:
                    terminate(by_name[name])
            if "kubelet" in by_name:
                terminate(by_name["kubelet"])
            phase("controllers, CoreDNS, kube-proxy, kube-router, kubelet stopped")
            if "containerd" in by_name and self._bin is not None:
                self._remove_containers()
                terminate(by_name["containerd"])
            self._processes.clear()
            phase("containerd stopped")
            if self.control_plane is not None:
                self.control_plane.stop()
                self.control_plane = None
            phase("control plane stopped")
            self.swept = sweep(self._workdir, self._bin, self._saved_sysctls)
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            if self._lock is not None:
                self._lock.close()
                self._lock = None
            phase("host given back")
            self.stop_seconds = time.monotonic() - started

    def _stop_pods(self) -> None:
        """No controller may start a new pod; then every pod is deleted and the kubelet kills it."""
        by_name = dict(self._processes)
        if self.control_plane is None or "kubelet" not in by_name:
            return
        for name in ("kube-controller-manager", "kube-scheduler"):
            if name in by_name:
                terminate(by_name[name])
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--wait=false", check=False)
        deadline = time.monotonic() + STOP_POD_TIMEOUT
        while time.monotonic() < deadline and by_name["kubelet"].poll() is None:
            listed = self.kubectl("get", "pods", "-A", "-o", "name", check=False)
            if listed.returncode == 0 and not listed.stdout.strip():
                return
            time.sleep(0.5)

    def _remove_containers(self) -> None:
        """What the kubelet left in containerd (stopped sandboxes): removed with its snapshots."""
        for task in self.ctr("tasks", "list", "--quiet", check=False).split():
            self.ctr("tasks", "kill", "--signal=SIGKILL", task, check=False)
            self.ctr("tasks", "delete", "--force", task, check=False)
        for container in self.ctr("containers", "list", "--quiet", check=False).split():
            self.ctr("containers", "delete", container, check=False)


# --- the safety net ----------------------------------------------------------------------------


def sweep(
    workdir: Path | None, bin_dir: Path | None, saved_sysctls: dict[str, str] | None = None
) -> list[str]:
    """Give back what a node holds on this host; return a line per thing that should not be here.

    Run at every stop, once the kubelet and containerd are gone, and by `make node-down` for a
    node whose process died (``workdir`` None: any node's ``gto-node-*`` temp dirs). Some of it
    is the node's own set-up and expected at this point: the bridge, the egress chain, the
    kubelet's own chains, kube-router's chains and ipsets (it leaves them at exit), the bind
    mount of the kubelet's root dir onto itself and its log symlinks, the cgroup parents. The
    rest — processes, pod volumes and root filesystems, network namespaces, veths, Service
    rules, pod cgroups — the kubelet, containerd and kube-proxy should have removed; what of it
    is found is removed too, and reported.
    """
    removed: list[str] = []
    workdirs = [workdir] if workdir is not None else node_workdirs()
    for process_id, description in node_processes(workdirs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process_id, signal.SIGKILL)
            removed.append(f"process {description}")
    own_mounts = {str(folder / "kubelet") for folder in workdirs}
    for mount in node_mounts(workdirs):
        if subprocess.run(["umount", mount], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        if mount not in own_mounts:
            removed.append(f"mount {mount}")
    # The kubelet's /var/log/containers links go with its container garbage collection, once a
    # minute, which a stopping node does not wait for: expected, removed, not reported.
    for link in node_container_log_links(workdirs):
        link.unlink(missing_ok=True)
    for socket_file in stale_shim_sockets():
        socket_file.unlink(missing_ok=True)
        removed.append(f"containerd shim socket {socket_file}")
    # The shims' folders, once empty (containerd makes them again when it needs them).
    for folder in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if bin_dir is not None and (bin_dir / "kube-proxy").exists():
        subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, check=False)
    for table, rule in iptables_leftovers():
        if not _own_rule(rule):
            removed.append(f"iptables -t {table} {rule}")
    _remove_iptables_chains()
    # Only once no rule refers to them.
    for name in node_ipsets():
        _run("ipset", "destroy", name, check=False)
    for interface in node_interfaces():
        _run("ip", "link", "delete", interface, check=False)
        if interface != BRIDGE:
            removed.append(f"interface {interface}")
    for cgroup in node_cgroups():
        for leaf in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if leaf.is_dir():
                if leaf.name.startswith("pod"):
                    removed.append(f"cgroup {leaf}")
                with contextlib.suppress(OSError):
                    leaf.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    saved = dict(saved_sysctls or {})
    for folder in workdirs:
        with contextlib.suppress(OSError, ValueError):
            saved = saved or json.loads((folder / "sysctls.json").read_text())
    for name, value in saved.items():
        with contextlib.suppress(OSError):
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
    return removed


def sweep_stale(bin_dir: Path | None) -> list[str] | None:
    """Remove what nodes whose process died left on this host, their temp dirs too; return a
    line per thing removed. None, and nothing touched, while a node runs or starts here: the
    bridge, chains and cgroups would be its own (a running node holds the machine's lock)."""
    try:
        lock = _take_node_lock(0.0)
    except NodeError:
        return None
    with lock:
        if any(owner_running(folder) for folder in node_workdirs()):
            return None
        removed = sweep(None, bin_dir)
        for folder in node_workdirs():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"temp dir {folder}")
        return removed


def _own_rule(line: str) -> bool:
    """A rule or chain of the node's own set-up: the kubelet's chains, the egress chain,
    kube-router's chains."""

    def own(chain: str) -> bool:
        return chain in {*KUBELET_CHAINS, EGRESS_CHAIN} or chain.startswith(ENFORCER_CHAIN_PREFIXES)

    fields = line.split()
    if line.startswith(":"):
        return own(line[1:].split()[0])
    target = fields[fields.index("-j") + 1] if "-j" in fields else ""
    return own(fields[1]) or own(target)


def node_workdirs() -> list[Path]:
    """Nodes' temp dirs (folders only: a file that happens to share the prefix is no node's)."""
    return sorted(p for p in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*") if p.is_dir())


def node_processes(workdirs: Sequence[Path]) -> list[tuple[int, str]]:
    """Processes of a node: in its cgroups (pods), or naming its workdir (shims)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        in_cgroup = any(
            line.split(":", 2)[-1].startswith(f"/{CGROUP_PARENT}/") for line in cgroups.splitlines()
        )
        if in_cgroup or any(str(folder) in command for folder in workdirs):
            found.append((int(entry.name), f"pid {entry.name}: {command[:120].strip()}"))
    return found


def node_mounts(workdirs: Sequence[Path]) -> list[str]:
    """Mount points under a node's workdir (pod volumes, rootfs, netns, shm), deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point.startswith(f"{folder}/") or point == str(folder) for folder in workdirs):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def node_container_log_links(workdirs: Sequence[Path]) -> list[Path]:
    if not CONTAINER_LOG_LINKS.is_dir():
        return []
    return [
        link
        for link in CONTAINER_LOG_LINKS.iterdir()
        if link.is_symlink()
        and any(os.readlink(link).startswith(f"{folder}/") for folder in workdirs)
    ]


def stale_shim_sockets() -> list[Path]:
    """Shim sockets no process listens on any more (a killed shim's; a live one is kept)."""
    if not SHIM_SOCKETS.is_dir():
        return []
    listening = {
        fields[-1]
        for fields in (line.split() for line in Path("/proc/net/unix").read_text().splitlines())
        if len(fields) == 8
    }
    return [path for path in SHIM_SOCKETS.iterdir() if str(path) not in listening]


def node_interfaces() -> list[str]:
    """The bridge and any veth still attached to it."""
    links = json.loads(_run("ip", "-json", "link", "show", check=False) or "[]")
    return [
        link["ifname"]
        for link in links
        if link.get("ifname") == BRIDGE or link.get("master") == BRIDGE
    ]


def node_ipsets() -> list[str]:
    """kube-router's ipsets (KUBE-SRC-*, KUBE-DST-*, ...)."""
    if shutil.which("ipset") is None:  # no node ever ran here
        return []
    names = _run("ipset", "list", "-name", check=False).split()
    return [name for name in names if name.startswith(IPSET_PREFIX)]


def node_cgroups() -> list[Path]:
    return [h / CGROUP_PARENT for h in _cgroup_hierarchies() if (h / CGROUP_PARENT).is_dir()]


def iptables_leftovers() -> list[tuple[str, str]]:
    """(table, rule) of every rule in a chain, or jumping to a chain, that a node creates."""
    found = []
    for iptables in ("iptables", "ip6tables"):
        if shutil.which(f"{iptables}-save") is None:  # no node ever ran here
            continue
        for table in IPTABLES_TABLES:
            dump = _run(f"{iptables}-save", "-t", table, check=False)
            for line in dump.splitlines():
                if _node_rule(line) or _node_chain(line):
                    found.append((f"{table} ({iptables})", line))
    return found


def _node_chain(line: str) -> bool:
    return line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)


def _node_rule(line: str) -> bool:
    if not line.startswith("-A "):
        return False
    fields = line.split()
    target = fields[fields.index("-j") + 1] if "-j" in fields else ""
    return fields[1].startswith(CHAIN_PREFIXES) or target.startswith(CHAIN_PREFIXES)


def _remove_iptables_chains() -> None:
    for iptables in ("iptables", "ip6tables"):
        for table in IPTABLES_TABLES:
            dump = _run(f"{iptables}-save", "-t", table, check=False)
            for line in dump.splitlines():
                # Quoted as a shell would: kube-router's jumps carry comments with spaces.
                fields = shlex.split(line)
                if _node_rule(line) and not fields[1].startswith(CHAIN_PREFIXES):
                    _run(iptables, "-w", "-t", table, "-D", *fields[1:], check=False)
            chains = [line[1:].split()[0] for line in dump.splitlines() if _node_chain(line)]
            for chain in chains:
                _run(iptables, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(iptables, "-w", "-t", table, "-X", chain, check=False)


def _cgroup_hierarchies() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():  # cgroup v2: one hierarchy
        return [root]
    return [
        path
        for path in sorted(root.iterdir())
        if path.is_dir() and not path.is_symlink() and path.name != "unified"
    ]


# --- helpers ------------------------------------------------------------------------------------


def _check_host() -> None:
    if os.geteuid() != 0:
        raise NodeError("a node needs root (network namespaces, cgroups, mounts, iptables)")
    missing = [
        str(path)
        for path in (
            RUNC,
            CNI_BIN_DIR / "bridge",
            CNI_BIN_DIR / "host-local",
            CNI_BIN_DIR / "loopback",
        )
        if not path.exists()
    ]
    missing += [
        tool for tool in ("iptables", "conntrack", "ip", "ipset") if shutil.which(tool) is None
    ]
    if missing:
        raise NodeError(f"missing {', '.join(missing)}: run `make node-deps` (apt-get)")


def _take_node_lock(timeout: float) -> IO[str]:
    """The machine's one node lock; waits up to ``timeout`` seconds for another node to stop."""
    path = NODE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise NodeError(
                    f"another node runs on this machine (lock {path}); stop it with "
                    "`make node-down`, or wait for the test run that started it"
                ) from None
            time.sleep(1)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _write_kubelet_client_pki(folder: Path) -> None:
    """A CA the kubelet trusts for clients, and the API server's client certificate from it."""
    folder.mkdir(mode=0o700)
    now = dt.datetime.now(dt.UTC)
    valid = (now - dt.timedelta(hours=1), now + dt.timedelta(days=7))
    ca_key, client_key = _ec_key(), _ec_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gto-node-kubelet-client-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "kubelet-ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "kubelet-client.crt").write_bytes(
        client_cert.public_bytes(serialization.Encoding.PEM)
    )
    _write_private(folder / "kubelet-client.key", _key_pem(client_key))


def _read_only_rbac(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A ClusterRole ``name`` with ``rules``, bound to the user ``name``."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}
                ],
            },
        ],
    }


def resolve(name: str, server: str, timeout: float = 2.0) -> list[str]:
    """The A records ``server`` answers for ``name`` (one UDP query; [] if none or no answer)."""
    query_id = secrets.randbits(16)
    question = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (server, 53))
            answer = sock.recv(4096)
        except OSError:
            return []
    reply_id, flags, _, count = struct.unpack(">HHHH", answer[:8])
    if reply_id != query_id or flags & 0x000F:
        return []
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(count):
        offset = _skip_name(answer, offset)
        kind, _, _, length = struct.unpack(">HHIH", answer[offset : offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            addresses.append(socket.inet_ntoa(answer[offset : offset + 4]))
        offset += length
    return addresses


def _skip_name(packet: bytes, offset: int) -> int:
    while packet[offset]:
        if packet[offset] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += packet[offset] + 1
    return offset + 1
