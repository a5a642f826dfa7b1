"""The sandbox's in-memory Google: clients, users, grants, tokens, faults and request counts.

Every decision the OAuth endpoints make is a method here, so the aiohttp handlers only
parse requests and render answers. One lock guards it all: tests read and change the
state from their own thread while the server's event loop serves requests in another.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .business import API_OF_ENDPOINT, BusinessApi, BusinessDirectory
from .demo_data import DEMO_CLIENT_ID as DEMO_CLIENT_ID
from .demo_data import DEMO_CLIENT_SECRET as DEMO_CLIENT_SECRET
from .demo_data import DEMO_REDIRECT_URIS as DEMO_REDIRECT_URIS
from .demo_data import load_demo_data
from .errors import ApiError, AuthorizationError, Fault, OAuthError
from .signing import process_signer

BUSINESS_SCOPE = "https://www.googleapis.com/auth/business.manage"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
# Google answers with the full URL of these short scope names (one reason the granted
# scope string differs from the requested one).
SCOPE_ALIASES = {
    "email": EMAIL_SCOPE,
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
_SCOPE_URL_PREFIX = "https://www.googleapis.com/auth/"
# Sign-in scopes: Google's consent page shows them without a checkbox, so they cannot be
# unticked; the other requested scopes can (see `untickable_scopes`).
IDENTITY_SCOPES = frozenset({"openid", EMAIL_SCOPE, SCOPE_ALIASES["profile"]})
# An app in "Testing" publishing status gets refresh tokens that die 7 days after consent
# (unless only sign-in scopes were granted).
PUBLISHING_STATUSES = ("production", "testing")
TESTING_GRANT_LIFETIME = 7 * 24 * 3600
# The `error_subtype` values with which Google's session control asks for re-authentication.
REAUTH_SUBTYPES = ("invalid_rapt", "rapt_required")
REAUTH_HELP_URI = "https://support.google.com/a/answer/9368756"

GRANT_TYPES = ("authorization_code", "refresh_token")
# Every counted endpoint; the first group are the routes (faults can target those).
ROUTE_ENDPOINTS = (
    "auth",
    "consent",
    "token",
    "revoke",
    "userinfo",
    "tokeninfo",
    "certs",
    *API_OF_ENDPOINT,
)
ENDPOINTS = (*ROUTE_ENDPOINTS, *(f"token.{grant}" for grant in GRANT_TYPES))

# Google's prefixes plus "sbx-", so a sandbox token is never mistaken for a real one.
ACCESS_TOKEN_PREFIX = "ya29.sbx-"
REFRESH_TOKEN_PREFIX = "1//sbx-"
CODE_PREFIX = "4/sbx-"
# How long the consent page stays usable, like Google's sign-in session.
CONSENT_REQUEST_LIFETIME = 1800.0
QUOTA_WINDOW = 60.0
_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status.value >= 400)

# Settings that tests and the control API may change: name -> (check, what it must be).
_SETTINGS: dict[str, tuple[Callable[[object], bool], str]] = {
    "token_lifetime": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (seconds)"),
    "code_lifetime": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (seconds)"),
    "auto_approve": (lambda v: isinstance(v, bool), "true or false"),
    "time_limited_access": (
        lambda v: v is None or (_is_int(v) and v > 0),
        "null or an integer > 0 (seconds)",
    ),
    "unticked_scopes": (
        lambda v: isinstance(v, list) and all(isinstance(s, str) and _known_scope(s) for s in v),
        "a list of scopes",
    ),
    "refresh_token_limit": (lambda v: _is_int(v) and v > 0, "an integer > 0"),
    "api_quota_per_minute": (lambda v: _is_int(v) and v > 0, "an integer > 0"),
}


@dataclasses.dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    name: str
    # This client's access token lifetime; None: the sandbox's `token_lifetime`.
    token_lifetime: int | None = None
    publishing_status: str = "production"


@dataclasses.dataclass(frozen=True)
class User:
    email: str
    name: str
    # A Google Workspace account's domain (Google's `hd` claim); empty for a Gmail account.
    hosted_domain: str = ""

    @property
    def sub(self) -> str:
        """Stable per e-mail, shaped like Google's 21-digit subject ids."""
        digest = int(hashlib.sha256(self.email.encode()).hexdigest(), 16)
        return "1" + str(digest)[:20]


@dataclasses.dataclass(eq=False)
class Grant:
    """One consent: its refresh token (if any was issued) and the access tokens it yields.

    Google keeps one grant per (client, account); the consents of one pair are its parts:
    revoking any of their tokens ends them all (`SandboxState.revoke`)."""

    client_id: str
    email: str
    scopes: frozenset[str]
    refresh_token: str | None
    offline: bool
    # When the refresh token dies (time-limited access or Testing status), if ever.
    expires_at: float | None = None
    # The end of time-limited access, which token answers announce; Testing status's is silent.
    announced_end: float | None = None
    revoked: bool = False

    @property
    def pair(self) -> tuple[str, str]:
        return self.client_id, self.email

    def live(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclasses.dataclass(frozen=True)
class AccessToken:
    token: str
    grant: Grant
    scopes: frozenset[str]
    expires_at: float


@dataclasses.dataclass(frozen=True)
class AuthorizationRequest:
    """A validated request to the authorization endpoint, waiting for the user's decision."""

    request_id: str
    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str
    offline: bool
    prompt: frozenset[str]
    login_hint: str | None
    include_granted_scopes: bool
    nonce: str | None
    expires_at: float


@dataclasses.dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    email: str
    redirect_uri: str
    scopes: frozenset[str]
    code_challenge: str | None
    code_challenge_method: str
    issue_refresh_token: bool
    offline: bool
    nonce: str | None
    expires_at: float


@dataclasses.dataclass(frozen=True)
class ConsentPage:
    """What the consent page shows; the form carries only the opaque `request_id`."""

    request_id: str
    app_name: str
    scopes: tuple[str, ...]
    # The scopes shown with a checkbox (ticked), which the person may untick.
    untickable: frozenset[str]
    accounts: tuple[str, ...]
    login_hint: str | None


@dataclasses.dataclass(frozen=True)
class Redirect:
    location: str


class SandboxState:
    """Everything the sandbox knows. Setting attributes (e.g. `token_lifetime`) is fine."""

    def __init__(self, *, demo_data: bool = True, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self.clock = clock
        # Google's access tokens live an hour minus a second.
        self.token_lifetime = 3599
        # Google's codes live minutes; tests shorten this to see an expired code.
        self.code_lifetime = 300.0
        # None: refresh tokens live until revoked; seconds: later consents grant
        # time-limited access, announced as `refresh_token_expires_in`.
        self.time_limited_access: int | None = None
        # Scopes the person unticks on auto-approved consents.
        self.unticked_scopes: list[str] = []
        # Google keeps 100 live refresh tokens per account per client; the oldest dies.
        self.refresh_token_limit = 100
        # Google's default quota of each Business Profile API, per client project.
        self.api_quota_per_minute = 300
        # Approve every consent at once (no page), for tests without a browser.
        self.auto_approve = False
        self.business = BusinessDirectory()
        self._signer = process_signer()
        self._clients: dict[str, OAuthClient] = {}
        self._broken_secrets: set[str] = set()
        self._users: dict[str, User] = {}
        self._grants: list[Grant] = []
        self._refresh_tokens: dict[str, Grant] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._consent_requests: dict[str, AuthorizationRequest] = {}
        # (client id, e-mail) -> the `error_subtype` its refreshes get until a new consent.
        self._reauth_required: dict[tuple[str, str], str] = {}
        # Refresh and revoke calls per (client id, e-mail, "refresh" | "revoke").
        self._grant_calls: collections.Counter[tuple[str, str, str]] = collections.Counter()
        # Faults and counts per (endpoint, OAuth client id); "" is any client.
        self._faults: dict[tuple[str, str], collections.deque[Fault]] = collections.defaultdict(
            collections.deque
        )
        self._counts: collections.Counter[str] = collections.Counter()
        self._client_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._api_calls: dict[tuple[BusinessApi, str], collections.deque[float]] = (
            collections.defaultdict(collections.deque)
        )
        self._secrets: set[str] = set()
        if demo_data:
            load_demo_data(self)

    # -- registry -------------------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        name: str = "Sandbox App",
        token_lifetime: int | None = None,
        publishing_status: str = "production",
    ) -> OAuthClient:
        """Add a client, or replace the one with this id."""
        if publishing_status not in PUBLISHING_STATUSES:
            raise ValueError(
                f"publishing_status must be one of {', '.join(PUBLISHING_STATUSES)}, "
                f"not {publishing_status!r}"
            )
        client = OAuthClient(
            client_id,
            client_secret,
            tuple(redirect_uris),
            name,
            token_lifetime,
            publishing_status,
        )
        with self._lock:
            self._clients[client_id] = client
            self._broken_secrets.discard(client_id)
            self._secrets.add(client_secret)
        return client

    def add_user(self, email: str, name: str | None = None, hosted_domain: str = "") -> User:
        user = User(email, name or email.split("@")[0], hosted_domain)
        with self._lock:
            self._users[email] = user
        return user

    def break_client_secret(self, client_id: str) -> None:
        """From now on no secret authenticates this client, as after a rotation in the console."""
        with self._lock:
            self._client(client_id)
            self._broken_secrets.add(client_id)

    def restore_client_secret(self, client_id: str) -> None:
        with self._lock:
            self._client(client_id)
            self._broken_secrets.discard(client_id)

    def apply_settings(self, changes: Mapping[str, object]) -> None:
        """Change several settings at once, or none if one is unknown or out of range."""
        for name, value in changes.items():
            if name not in _SETTINGS:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(_SETTINGS)}")
            check, expected = _SETTINGS[name]
            if not check(value):
                raise ValueError(f"{name} must be {expected}, not {value!r}")
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    # -- grants, as the user or Google's account page would change them --------------------

    def mint_grant(self, client_id: str, email: str, scopes: Iterable[str]) -> str:
        """An offline grant as if the user had consented already; returns its refresh token."""
        with self._lock:
            self._client(client_id)
            self._user(email)
            refresh_token = self._issue(REFRESH_TOKEN_PREFIX)
            granted = _normalize_scopes(scopes)
            self._new_grant(client_id, email, granted, True, refresh_token, self.clock())
        return refresh_token

    def revoke_grants(self, client_id: str, email: str | None = None) -> int:
        """The user (or every user) removes the app's access; returns how many grants died."""
        with self._lock:
            doomed = [
                grant
                for grant in self._grants
                if grant.client_id == client_id
                and not grant.revoked
                and (email is None or grant.email == email)
            ]
            for grant in doomed:
                grant.revoked = True
        return len(doomed)

    def remove_scopes(self, client_id: str, email: str, scopes: Iterable[str]) -> None:
        """The person removes some permissions in their Google account: later refreshes of
        the grant answer without them."""
        removed = _normalize_scopes(scopes)
        with self._lock:
            self._client(client_id)
            for grant in self._grants_of((client_id, email)):
                grant.scopes -= removed

    def require_reauth(self, client_id: str, email: str, subtype: str) -> None:
        """Session control wants the person to sign in again: refreshes of the grant fail
        with `error_subtype` until a new consent."""
        if subtype not in REAUTH_SUBTYPES:
            raise ValueError(f"subtype must be one of {', '.join(REAUTH_SUBTYPES)}")
        with self._lock:
            self._client(client_id)
            self._user(email)
            self._reauth_required[(client_id, email)] = subtype

    def grants(self, client_id: str) -> list[dict[str, Any]]:
        """Per account that consented to this client: the grant's scopes, whether a refresh
        token of it still works, and the refresh and revoke calls its tokens got (since the
        last reset). Never a token."""
        now = self.clock()
        with self._lock:
            self._client(client_id)
            emails = dict.fromkeys(g.email for g in self._grants if g.client_id == client_id)
            listing = []
            for email in emails:
                parts = self._grants_of((client_id, email))
                working = [g for g in parts if g.refresh_token and g.live(now)]
                scopes = frozenset[str]().union(*(g.scopes for g in working or parts[-1:]))
                listing.append(
                    {
                        "email": email,
                        "scopes": sorted(scopes),
                        "live": bool(working),
                        "refresh_calls": self._grant_calls[(client_id, email, "refresh")],
                        "revoke_calls": self._grant_calls[(client_id, email, "revoke")],
                    }
                )
            return listing

    # -- faults and counts ----------------------------------------------------------------

    def inject_faults(
        self,
        endpoint: str,
        *,
        status: int,
        count: int = 1,
        retry_after: int | str | None = None,
        answer: Mapping[str, Any] | None = None,
        client_id: str = "",
    ) -> None:
        """The next `count` calls of `endpoint` (by OAuth client `client_id`, if given: token
        calls only) fail with `status` (0: the connection drops), or, with status 200,
        succeed with `answer`'s fields put over the real answer."""
        if endpoint not in ROUTE_ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ROUTE_ENDPOINTS)}")
        if status == 200:
            if not answer:
                raise ValueError("status 200 needs the answer fields to change")
        elif status != 0 and status not in _ERROR_STATUSES:
            raise ValueError("status must be 0 (drop the connection), 200 or an error status")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults[(endpoint, client_id)].extend([Fault(status, retry_after, answer)] * count)

    def inject_token_faults(self, count: int, status: int, retry_after: int | None = None) -> None:
        self.inject_faults("token", status=status, count=count, retry_after=retry_after)

    def record_call(
        self,
        endpoint: str,
        grant_type: str | None = None,
        client_id: str = "",
        token: str = "",
    ) -> Fault | None:
        """Count a call (token calls also per grant type and per client; refresh and revoke
        calls also per grant, found by the `token` they present); return the fault it must
        suffer: one injected for its client first, else one for any client."""
        with self._lock:
            self._counts[endpoint] += 1
            if grant_type in GRANT_TYPES:
                self._counts[f"{endpoint}.{grant_type}"] += 1
            if client_id:
                self._client_counts[(endpoint, client_id)] += 1
            self._count_grant_call(endpoint, grant_type, token)
            queues = [(endpoint, client_id), (endpoint, "")] if client_id else [(endpoint, "")]
            for queue_key in queues:
                pending = self._faults.get(queue_key)
                if pending:
                    return pending.popleft()
            return None

    def clear_faults(self) -> None:
        """Google is back: every pending fault is dropped."""
        with self._lock:
            self._faults.clear()

    def live_refresh_tokens(self, client_id: str) -> set[str]:
        """The refresh tokens of this client's grants that still work."""
        now = self.clock()
        with self._lock:
            return {
                grant.refresh_token
                for grant in self._grants
                if grant.client_id == client_id and grant.refresh_token and grant.live(now)
            }

    def client_calls(self, endpoint: str, client_id: str) -> int:
        """Calls of `endpoint` by one OAuth client since the last reset (token calls)."""
        with self._lock:
            return self._client_counts[(endpoint, client_id)]

    @property
    def counts(self) -> dict[str, int]:
        """Calls per endpoint (see ENDPOINTS), zero included, since the last reset."""
        with self._lock:
            return {endpoint: self._counts[endpoint] for endpoint in ENDPOINTS}

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._client_counts.clear()
            self._grant_calls.clear()

    def issued_access_tokens(self) -> list[str]:
        """Every access token issued so far, oldest first."""
        with self._lock:
            return list(self._access_tokens)

    def issued_secrets(self) -> set[str]:
        """Every client secret, code and token ever registered or issued, to search logs for."""
        with self._lock:
            return set(self._secrets)

    # -- authorization endpoint and consent page ------------------------------------------

    def start_authorization(self, query: Mapping[str, str]) -> ConsentPage | Redirect:
        """Validate the request; auto-approve it, or keep it for the consent page."""
        request = self._authorization_request(query)
        with self._lock:
            if self.auto_approve:
                unticked = _normalize_scopes(self.unticked_scopes)
                ticked = [scope for scope in request.scopes if scope not in unticked]
                return self._approve(request, self._auto_approve_user(request), ticked)
            self._consent_requests[request.request_id] = request
            known_hint = request.login_hint if request.login_hint in self._users else None
            return ConsentPage(
                request_id=request.request_id,
                app_name=request.client.name,
                scopes=request.scopes,
                untickable=untickable_scopes(request.scopes),
                accounts=tuple(self._users),
                login_hint=known_hint,
            )

    def finish_consent(
        self,
        request_id: str,
        allow: bool,
        email: str | None,
        ticked: Iterable[str] = (),
    ) -> Redirect:
        """The user pressed Allow (as `email`, with the `ticked` scopes) or Deny on the
        consent page."""
        with self._lock:
            request = self._consent_requests.pop(request_id, None)
            if request is None or request.expires_at <= self.clock():
                raise AuthorizationError(
                    400,
                    "invalid_request",
                    "This sign-in request is unknown, used or expired. Start the sign-in again.",
                )
            if not allow:
                params = {"error": "access_denied", "state": request.state}
                return Redirect(_with_query(request.redirect_uri, params))
            if email not in self._users:
                raise AuthorizationError(400, "invalid_request", "Choose a listed account.")
            return self._approve(request, email, ticked)

    # -- token endpoint -------------------------------------------------------------------

    def token(
        self, form: Mapping[str, str], basic_auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """Answer a token request (form fields; client credentials from Basic auth or form)."""
        grant_type = form.get("grant_type", "")
        if grant_type not in GRANT_TYPES:
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        now = self.clock()
        with self._lock:
            client = self._authenticate_client(form, basic_auth)
            if grant_type == "authorization_code":
                return self._exchange_code(client, form, now)
            return self._refresh(client, form, now)

    def revoke(self, token: str) -> None:
        """Revoke the grant behind a refresh token or a live access token: every token of
        that client and account dies, as Google keeps one grant per pair."""
        with self._lock:
            grant = self._refresh_tokens.get(token)
            if grant is None:
                access = self._live_access_token(token)
                grant = access.grant if access else None
            if grant is None or not grant.live(self.clock()):
                raise OAuthError(400, "invalid_token", "Token expired or revoked")
            for part in self._grants_of(grant.pair):
                part.revoked = True

    def userinfo(self, authorization: str | None) -> dict[str, Any]:
        with self._lock:
            access = self._live_access_token(_bearer_token(authorization))
            if access is None:
                raise OAuthError(
                    401,
                    "invalid_request",
                    "Invalid Credentials",
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            user = self._users[access.grant.email]
        info: dict[str, Any] = {"sub": user.sub}
        if EMAIL_SCOPE in access.scopes:
            info.update(email=user.email, email_verified=True)
        if user.hosted_domain:
            info["hd"] = user.hosted_domain
        return info

    def tokeninfo(self, access_token: str) -> dict[str, str]:
        """Google answers every value as a string here."""
        now = self.clock()
        with self._lock:
            access = self._live_access_token(access_token)
            if access is None:
                raise OAuthError(400, "invalid_token", "Invalid Value")
            user = self._users[access.grant.email]
        info = {
            "azp": access.grant.client_id,
            "aud": access.grant.client_id,
            "sub": user.sub,
            "scope": " ".join(sorted(access.scopes)),
            "exp": str(int(access.expires_at)),
            "expires_in": str(max(0, int(access.expires_at - now))),
            "access_type": "offline" if access.grant.offline else "online",
        }
        if EMAIL_SCOPE in access.scopes:
            info.update(email=user.email, email_verified="true")
        return info

    def id_token_certs(self) -> dict[str, str]:
        return self._signer.certs()

    # -- Business Profile APIs ------------------------------------------------------------

    def authorize_api_call(self, endpoint: str, authorization: str | None) -> str:
        """Check the bearer token and the API's quota; return the caller's e-mail."""
        api = API_OF_ENDPOINT[endpoint]
        token = _bearer_token(authorization)
        if not token:
            raise ApiError.credentials_missing(api.service)
        now = self.clock()
        with self._lock:
            access = self._access_tokens.get(token)
            if access is None or access.grant.revoked:
                raise ApiError.credentials_invalid(api.service, "ACCESS_TOKEN_TYPE_UNSUPPORTED")
            if access.expires_at <= now:
                raise ApiError.credentials_invalid(api.service, "ACCESS_TOKEN_EXPIRED")
            if BUSINESS_SCOPE not in access.scopes:
                raise ApiError.scope_insufficient(api.service)
            calls = self._api_calls[(api, access.grant.client_id)]
            while calls and calls[0] <= now - QUOTA_WINDOW:
                calls.popleft()
            if len(calls) >= self.api_quota_per_minute:
                raise ApiError.quota_exceeded(api.service, self.api_quota_per_minute)
            calls.append(now)
            return access.grant.email

    # -- internals ---------------------------------------------------------------------------

    def _client(self, client_id: str) -> OAuthClient:
        try:
            return self._clients[client_id]
        except KeyError:
            raise KeyError(f"no OAuth client {client_id!r}") from None

    def _user(self, email: str) -> User:
        try:
            return self._users[email]
        except KeyError:
            raise KeyError(f"no user {email!r}") from None

    def _authorization_request(self, query: Mapping[str, str]) -> AuthorizationRequest:
        with self._lock:
            client = self._clients.get(query.get("client_id", ""))
        if client is None:
            raise AuthorizationError(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            raise AuthorizationError(
                400, "invalid_request", "Missing required parameter: redirect_uri"
            )
        if redirect_uri not in client.redirect_uris:
            raise AuthorizationError(
                400,
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
                "policy. If you're the app developer, register the redirect URI in the Google "
                f"Cloud Console. Request details: redirect_uri={redirect_uri}",
            )
        response_type = query.get("response_type", "")
        if response_type != "code":
            raise AuthorizationError(
                400, "unsupported_response_type", f"Unsupported response_type: {response_type!r}"
            )
        requested = query.get("scope", "").split()
        if not requested:
            raise AuthorizationError(400, "invalid_request", "Missing required parameter: scope")
        invalid = [scope for scope in requested if not _known_scope(scope)]
        if invalid:
            raise AuthorizationError(
                400, "invalid_scope", f"Some requested scopes were invalid: {' '.join(invalid)}"
            )
        method = query.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            raise AuthorizationError(400, "invalid_request", "Invalid code_challenge_method")
        access_type = query.get("access_type", "online")
        if access_type not in ("online", "offline"):
            raise AuthorizationError(400, "invalid_request", f"Invalid access_type: {access_type}")
        return AuthorizationRequest(
            request_id=secrets.token_urlsafe(24),
            client=client,
            redirect_uri=redirect_uri,
            scopes=tuple(dict.fromkeys(SCOPE_ALIASES.get(s, s) for s in requested)),
            state=query.get("state"),
            code_challenge=query.get("code_challenge") or None,
            code_challenge_method=method,
            offline=access_type == "offline",
            prompt=frozenset(query.get("prompt", "").split()),
            login_hint=query.get("login_hint") or None,
            include_granted_scopes=query.get("include_granted_scopes") == "true",
            nonce=query.get("nonce") or None,
            expires_at=self.clock() + CONSENT_REQUEST_LIFETIME,
        )

    def _auto_approve_user(self, request: AuthorizationRequest) -> str:
        if request.login_hint in self._users:
            return request.login_hint
        if not self._users:
            raise AuthorizationError(400, "access_denied", "The sandbox has no users to sign in.")
        return next(iter(self._users))

    def _approve(
        self, request: AuthorizationRequest, email: str, ticked: Iterable[str]
    ) -> Redirect:
        """Issue a code for the requested scopes the person left ticked (sign-in scopes
        cannot be unticked). Like Google, a refresh token will come with it only for offline
        access when the consent screen was due: prompt=consent, or scopes not yet granted."""
        already_granted = self._granted_scopes(request.client.client_id, email)
        consent_shown = "consent" in request.prompt or not set(request.scopes) <= already_granted
        left_out = untickable_scopes(request.scopes) - frozenset(ticked)
        scopes = frozenset(scope for scope in request.scopes if scope not in left_out)
        if request.include_granted_scopes:
            scopes |= already_granted
        code = self._issue(CODE_PREFIX)
        self._codes[code] = AuthorizationCode(
            client_id=request.client.client_id,
            email=email,
            redirect_uri=request.redirect_uri,
            scopes=scopes,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            issue_refresh_token=request.offline and consent_shown,
            offline=request.offline,
            nonce=request.nonce,
            expires_at=self.clock() + self.code_lifetime,
        )
        params = {"state": request.state, "code": code, "scope": _scope_string(scopes)}
        return Redirect(_with_query(request.redirect_uri, params))

    def _granted_scopes(self, client_id: str, email: str) -> frozenset[str]:
        now = self.clock()
        granted: set[str] = set()
        for grant in self._grants:
            if grant.client_id == client_id and grant.email == email and grant.live(now):
                granted |= grant.scopes
        return frozenset(granted)

    def _authenticate_client(
        self, form: Mapping[str, str], basic_auth: tuple[str, str] | None
    ) -> OAuthClient:
        client_id, secret = basic_auth or (form.get("client_id", ""), form.get("client_secret"))
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if not secret:
            raise OAuthError(400, "invalid_request", "client_secret is missing.")
        if client_id in self._broken_secrets or not hmac.compare_digest(
            secret.encode(), client.client_secret.encode()
        ):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client

    def _exchange_code(
        self, client: OAuthClient, form: Mapping[str, str], now: float
    ) -> dict[str, Any]:
        value = form.get("code", "")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        # A code is spent by the first exchange attempt, successful or not: a client must
        # not count on retrying a failed exchange with the same code.
        code = self._codes.pop(value, None)
        if code is None or code.expires_at <= now or code.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        redirect_uri = form.get("redirect_uri", "")
        if not redirect_uri:
            raise OAuthError(400, "invalid_request", "Missing parameter: redirect_uri")
        if redirect_uri != code.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if not _pkce_matches(verifier, code.code_challenge, code.code_challenge_method):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        refresh_token = self._issue(REFRESH_TOKEN_PREFIX) if code.issue_refresh_token else None
        grant = self._new_grant(
            code.client_id, code.email, code.scopes, code.offline, refresh_token, now
        )
        return self._token_answer(
            grant, grant.scopes, now, with_refresh_token=True, nonce=code.nonce
        )

    def _refresh(self, client: OAuthClient, form: Mapping[str, str], now: float) -> dict[str, Any]:
        value = form.get("refresh_token", "")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = self._refresh_tokens.get(value)
        if grant is None or not grant.live(now):
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if grant.client_id != client.client_id:
            raise OAuthError(401, "unauthorized_client", "Unauthorized")
        subtype = self._reauth_required.get(grant.pair)
        if subtype:
            raise OAuthError(
                400,
                "invalid_grant",
                f"reauth related error ({subtype})",
                fields={"error_uri": REAUTH_HELP_URI, "error_subtype": subtype},
            )
        # A refresh may ask for fewer scopes than granted, never for more.
        requested = _normalize_scopes(form.get("scope", "").split())
        if not requested <= grant.scopes:
            raise OAuthError(400, "invalid_scope", "Some requested scopes were not granted.")
        return self._token_answer(grant, requested or grant.scopes, now, with_refresh_token=False)

    def _new_grant(
        self,
        client_id: str,
        email: str,
        scopes: frozenset[str],
        offline: bool,
        refresh_token: str | None,
        now: float,
    ) -> Grant:
        # A new consent is the re-authentication session control asked for.
        self._reauth_required.pop((client_id, email), None)
        expires_at: float | None = None
        announced_end: float | None = None
        if refresh_token:
            self._retire_refresh_tokens_over_limit(client_id, email, now)
            if self.time_limited_access:
                expires_at = announced_end = now + self.time_limited_access
            # Google spares grants of sign-in scopes only.
            testing = self._client(client_id).publishing_status == "testing"
            if testing and not scopes <= IDENTITY_SCOPES:
                expires_at = min(expires_at or math.inf, now + TESTING_GRANT_LIFETIME)
        grant = Grant(client_id, email, scopes, refresh_token, offline, expires_at, announced_end)
        self._grants.append(grant)
        if refresh_token:
            self._refresh_tokens[refresh_token] = grant
        return grant

    def _retire_refresh_tokens_over_limit(self, client_id: str, email: str, now: float) -> None:
        """Make room for one more refresh token: the oldest live ones die silently."""
        live = [
            grant
            for grant in self._grants
            if grant.client_id == client_id
            and grant.email == email
            and grant.refresh_token
            and grant.live(now)
        ]
        for grant in live[: max(0, len(live) - self.refresh_token_limit + 1)]:
            grant.revoked = True

    def _token_answer(
        self,
        grant: Grant,
        scopes: frozenset[str],
        now: float,
        *,
        with_refresh_token: bool,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        own = (
            self._clients[grant.client_id].token_lifetime
            if grant.client_id in self._clients
            else None
        )
        lifetime = self.token_lifetime if own is None else own
        access = AccessToken(self._issue(ACCESS_TOKEN_PREFIX), grant, scopes, now + lifetime)
        self._access_tokens[access.token] = access
        answer: dict[str, Any] = {
            "access_token": access.token,
            "expires_in": lifetime,
            "scope": _scope_string(scopes),
            "token_type": "Bearer",
        }
        if with_refresh_token and grant.refresh_token:
            answer["refresh_token"] = grant.refresh_token
        if grant.announced_end is not None:
            answer["refresh_token_expires_in"] = int(grant.announced_end - now)
        if "openid" in scopes:
            answer["id_token"] = self._id_token(grant, scopes, now, nonce)
        return answer

    def _id_token(self, grant: Grant, scopes: frozenset[str], now: float, nonce: str | None) -> str:
        user = self._users[grant.email]
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": user.sub,
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        if EMAIL_SCOPE in scopes:
            claims.update(email=user.email, email_verified=True)
        if nonce:
            claims["nonce"] = nonce
        id_token = self._signer.sign(claims)
        self._secrets.add(id_token)
        return id_token

    def _grants_of(self, pair: tuple[str, str]) -> list[Grant]:
        """The consents that make up Google's one grant of this (client, account), oldest
        first."""
        return [grant for grant in self._grants if grant.pair == pair]

    def _count_grant_call(self, endpoint: str, grant_type: str | None, token: str) -> None:
        if endpoint == "token" and grant_type == "refresh_token":
            grant = self._refresh_tokens.get(token)
            kind = "refresh"
        elif endpoint == "revoke":
            access = self._access_tokens.get(token)
            grant = self._refresh_tokens.get(token) or (access.grant if access else None)
            kind = "revoke"
        else:
            return
        if grant is not None:
            self._grant_calls[(*grant.pair, kind)] += 1

    def _live_access_token(self, token: str | None) -> AccessToken | None:
        access = self._access_tokens.get(token or "")
        if access is None or access.grant.revoked or access.expires_at <= self.clock():
            return None
        return access

    def _issue(self, prefix: str) -> str:
        value = prefix + secrets.token_urlsafe(32)
        self._secrets.add(value)
        return value


def untickable_scopes(requested: Iterable[str]) -> frozenset[str]:
    """The scopes Google's granular consent screen lets the person untick: every one but the
    sign-in scopes, once the request holds two scopes and one of them is not a sign-in scope.
    A request of one scope, or of sign-in scopes only, is all or nothing."""
    requested = frozenset(requested)
    others = requested - IDENTITY_SCOPES
    return others if len(requested) >= 2 else frozenset()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return _is_int(value) or isinstance(value, float)


def _known_scope(scope: str) -> bool:
    return scope == "openid" or scope in SCOPE_ALIASES or scope.startswith(_SCOPE_URL_PREFIX)


def _normalize_scopes(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(SCOPE_ALIASES.get(scope, scope) for scope in scopes)


def _scope_string(scopes: frozenset[str]) -> str:
    """Space separated in no promised order, as Google answers."""
    ordered = sorted(scopes)
    secrets.SystemRandom().shuffle(ordered)
    return " ".join(ordered)


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return hmac.compare_digest(verifier.encode(), challenge.encode())


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _with_query(uri: str, params: Mapping[str, str | None]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
