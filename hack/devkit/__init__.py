"""Local Kubernetes control plane (real etcd + kube-apiserver) for tests and `make demo`."""

from .binaries import BinariesMissingError, ensure_binaries
from .controlplane import ADMIN_USER, OWNER_FILE, TEMP_PREFIX, ControlPlane, ControlPlaneError

__all__ = [
    "ADMIN_USER",
    "OWNER_FILE",
    "TEMP_PREFIX",
    "BinariesMissingError",
    "ControlPlane",
    "ControlPlaneError",
    "ensure_binaries",
]
