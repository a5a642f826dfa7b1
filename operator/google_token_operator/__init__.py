"""google-token-operator: keeps Google OAuth access tokens fresh in Kubernetes Secrets."""

GROUP = "google-token-operator.dev"
VERSION = "v1"
MANAGED_BY = "google-token-operator"
