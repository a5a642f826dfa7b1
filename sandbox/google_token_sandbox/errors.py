"""The errors the sandbox answers with, each in the shape Google uses on that endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

# Google's canonical status names (google.rpc.Code) for the HTTP codes the APIs answer.
_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# How the token endpoint words an overload; google-auth retries on these `error` values
# as well as on the status codes.
_OAUTH_OVERLOAD = {
    429: ("temporarily_unavailable", "Rate limit exceeded. Try again later."),
    500: ("server_error", "Internal error."),
    503: ("temporarily_unavailable", "The service is currently unavailable."),
}

_INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class OAuthError(Exception):
    """An answer of the OAuth endpoints: `{"error": ..., "error_description": ...}`."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})
        # More fields of the answer, e.g. `error_subtype` and `error_uri`.
        self.fields = dict(fields or {})

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description, **self.fields}


class ApiError(Exception):
    """An answer of the Business Profile APIs in Google's common error shape."""

    def __init__(
        self,
        code: int,
        message: str,
        details: list[dict[str, Any]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": _RPC_STATUS.get(self.code, "UNKNOWN"),
                "details": self.details,
            }
        }

    @classmethod
    def with_reason(
        cls,
        code: int,
        message: str,
        reason: str,
        service: str,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": service},
        }
        return cls(code, message, [info], headers)

    @classmethod
    def credentials_missing(cls, service: str) -> ApiError:
        return cls.with_reason(
            401, _MISSING_CREDENTIALS, "CREDENTIALS_MISSING", service, _bearer_challenge()
        )

    @classmethod
    def credentials_invalid(cls, service: str, reason: str) -> ApiError:
        """`reason` is ACCESS_TOKEN_EXPIRED or ACCESS_TOKEN_TYPE_UNSUPPORTED (unknown token)."""
        return cls.with_reason(
            401, _INVALID_CREDENTIALS, reason, service, _bearer_challenge("invalid_token")
        )

    @classmethod
    def scope_insufficient(cls, service: str) -> ApiError:
        return cls.with_reason(
            403,
            "Request had insufficient authentication scopes.",
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            service,
            _bearer_challenge("insufficient_scope"),
        )

    @classmethod
    def permission_denied(cls, service: str) -> ApiError:
        return cls.with_reason(
            403, "The caller does not have permission", "PERMISSION_DENIED", service
        )

    @classmethod
    def not_found(cls, service: str) -> ApiError:
        return cls.with_reason(404, "Requested entity was not found.", "NOT_FOUND", service)

    @classmethod
    def invalid_argument(cls, field: str, description: str) -> ApiError:
        violation = {"field": field, "description": description}
        details = [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
        ]
        return cls(400, "Request contains an invalid argument.", details)

    @classmethod
    def quota_exceeded(cls, service: str, limit: int) -> ApiError:
        message = (
            f"Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' "
            f"of service '{service}' ({limit} per minute)."
        )
        return cls.with_reason(429, message, "RATE_LIMIT_EXCEEDED", service)


class AuthorizationError(Exception):
    """What Google's authorization page shows instead of redirecting: "Error 400: ...".

    `shown_code` is the number on the page; the HTTP status of the page is always 400.
    """

    def __init__(self, shown_code: int, error: str, description: str) -> None:
        super().__init__(f"Error {shown_code}: {error} ({description})")
        self.shown_code = shown_code
        self.error = error
        self.description = description


@dataclasses.dataclass(frozen=True)
class Fault:
    """An injected failure: `status` 0 drops the connection; 200 answers as usual but with the
    fields of `answer` put over the JSON answer (a value of None makes the field null): a
    Google-compatible server answering nonsense; else an error of that status.
    `retry_after` is sent as it is, so a test can send one no server should."""

    status: int
    retry_after: int | str | None = None
    answer: Mapping[str, Any] | None = None

    def oauth_error(self) -> OAuthError:
        error, description = _OAUTH_OVERLOAD.get(
            self.status, ("server_error", HTTPStatus(self.status).phrase)
        )
        return OAuthError(self.status, error, description, self._headers())

    def api_error(self, service: str) -> ApiError:
        reason = _RPC_STATUS.get(self.status, "UNKNOWN")
        return ApiError.with_reason(
            self.status, HTTPStatus(self.status).phrase, reason, service, self._headers()
        )

    def _headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


def _bearer_challenge(error: str | None = None) -> dict[str, str]:
    challenge = 'Bearer realm="https://accounts.google.com/"'
    if error:
        challenge += f', error="{error}"'
    return {"WWW-Authenticate": challenge}
