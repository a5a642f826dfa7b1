"""The Kubernetes edge: configuration (`config`), an asyncio API client (`api`) and
list-and-watch caches (`informer`)."""

from .api import Kube, KubeError, StatusConflict, WriteFenced
from .config import ConfigError, KubeConfig, load_config

__all__ = [
    "ConfigError",
    "Kube",
    "KubeConfig",
    "KubeError",
    "StatusConflict",
    "WriteFenced",
    "load_config",
]
