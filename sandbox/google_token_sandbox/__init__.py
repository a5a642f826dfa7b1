"""A sandbox Google: OAuth and Business Profile endpoints on one loopback host.

It behaves as `docs/google-behaviour.md` describes, so the operator, its tests and `make demo`
run without Google. Every path mirrors Google's real one, so pointing the operator at the
sandbox is only a matter of swapping the host (see `sandbox_environment`).
"""

from __future__ import annotations

AUTH_PATH = "/o/oauth2/v2/auth"
CONSENT_PATH = "/signin/oauth/consent"
TOKEN_PATH = "/token"
REVOKE_PATH = "/revoke"
USERINFO_PATH = "/v1/userinfo"
TOKENINFO_PATH = "/tokeninfo"
CERTS_PATH = "/oauth2/v1/certs"
CONTROL_PREFIX = "/_sandbox"


def sandbox_environment(base_url: str) -> dict[str, str]:
    """The seven GOOGLE_* settings that point the operator at a sandbox serving `base_url`."""
    base = base_url.rstrip("/")
    return {
        "GOOGLE_OAUTH_AUTH_URI": base + AUTH_PATH,
        "GOOGLE_OAUTH_TOKEN_URI": base + TOKEN_PATH,
        "GOOGLE_OAUTH_REVOKE_URI": base + REVOKE_PATH,
        "GOOGLE_USERINFO_URI": base + USERINFO_PATH,
        # The three Business Profile APIs live on one host here; the operator appends
        # /v1/... or /v4/... as it does to Google's three hosts.
        "GOOGLE_BUSINESS_ACCOUNT_API": base,
        "GOOGLE_BUSINESS_INFO_API": base,
        "GOOGLE_BUSINESS_REVIEWS_API": base,
    }
