"""The consent callback: where Google sends the person back after the consent screen.

It is the one internet-facing part, so it holds no Kubernetes permissions and no secrets:
it hands what Google sent (state, code or error, scope) to the operator's internal consent
API, which validates and spends the state, exchanges the code and stores the refresh token,
and renders a page from the operator's answer. Nothing here ever shows or logs a code.
"""

from __future__ import annotations

CALLBACK_PATH = "/oauth2/callback"
HEALTHZ_PATH = "/healthz"
# The operator's consent API, relative to its base URL.
CONSENT_API_PATH = "/consent"
OPERATOR_URL_VARIABLE = "OPERATOR_CONSENT_URL"
# The operator's consent API port on the same host: what `run` next to `callback` uses.
DEFAULT_OPERATOR_URL = "http://127.0.0.1:8082"
