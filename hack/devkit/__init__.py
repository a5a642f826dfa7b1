"""Local Kubernetes control plane (real etcd + kube-apiserver) for tests and `make demo`."""

from .binaries import BinariesMissingError, ensure_binaries
from .controlplane import ADMIN_USER, TEMP_PREFIX, ControlPlane, ControlPlaneError
from .lifecycle import OWNER_FILE

__all__ = [
    "ADMIN_USER",
    "OWNER_FILE",
    "TEMP_PREFIX",
    "BinariesMissingError",
    "ControlPlane",
    "ControlPlaneError",
    "ensure_binaries",
]
