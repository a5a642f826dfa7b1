"""Business Profile data (accounts, locations, reviews) and Google's answers about it.

Each query takes the e-mail of the caller (already authenticated by the state) and the
request's query parameters, and returns the JSON Google would, or raises `ApiError`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import ApiError

T = TypeVar("T")

STAR_RATINGS = ("ONE", "TWO", "THREE", "FOUR", "FIVE")

# Top-level fields of Google's Location resource that a readMask may name.
LOCATION_FIELDS = frozenset(
    {
        "name",
        "languageCode",
        "storeCode",
        "title",
        "phoneNumbers",
        "categories",
        "storefrontAddress",
        "websiteUri",
        "regularHours",
        "specialHours",
        "serviceArea",
        "labels",
        "adWordsLocationExtensions",
        "latlng",
        "openInfo",
        "metadata",
        "profile",
        "relationshipData",
        "moreHours",
        "serviceItems",
    }
)


class BusinessApi(enum.Enum):
    """The three Google APIs, each with its own service name and quota."""

    ACCOUNT = "mybusinessaccountmanagement.googleapis.com"
    INFO = "mybusinessbusinessinformation.googleapis.com"
    REVIEWS = "mybusiness.googleapis.com"

    @property
    def service(self) -> str:
        return self.value


# Counted endpoint name -> the API that serves it.
API_OF_ENDPOINT = {
    "accounts.list": BusinessApi.ACCOUNT,
    "locations.list": BusinessApi.INFO,
    "locations.get": BusinessApi.INFO,
    "reviews.list": BusinessApi.REVIEWS,
}


@dataclasses.dataclass
class Account:
    account_id: str
    account_name: str
    type: str
    managers: set[str]

    @property
    def name(self) -> str:
        return f"accounts/{self.account_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "accountName": self.account_name,
            "type": self.type,
            "verificationState": "VERIFIED",
            "vettedState": "NOT_VETTED",
        }


@dataclasses.dataclass(frozen=True)
class Review:
    review_id: str
    reviewer: str
    star_rating: int
    create_time: dt.datetime
    update_time: dt.datetime
    comment: str | None = None
    is_anonymous: bool = False
    reply: str | None = None
    reply_time: dt.datetime | None = None

    def to_json(self, location_path: str) -> dict[str, Any]:
        review: dict[str, Any] = {
            "name": f"{location_path}/reviews/{self.review_id}",
            "reviewId": self.review_id,
            "reviewer": {"displayName": self.reviewer, "isAnonymous": self.is_anonymous},
            "starRating": STAR_RATINGS[self.star_rating - 1],
            "createTime": _timestamp(self.create_time),
            "updateTime": _timestamp(self.update_time),
        }
        if self.comment is not None:
            review["comment"] = self.comment
        if self.reply is not None:
            review["reviewReply"] = {
                "comment": self.reply,
                "updateTime": _timestamp(self.reply_time or self.update_time),
            }
        return review


@dataclasses.dataclass
class Location:
    location_id: str
    account_id: str
    title: str
    details: dict[str, Any]
    reviews: list[Review] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"locations/{self.location_id}"

    def resource(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, **self.details}


class BusinessDirectory:
    """Who manages which account, and each account's locations and their reviews."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._locations: dict[str, Location] = {}

    def add_account(
        self,
        account_id: str,
        account_name: str,
        managers: Iterable[str],
        type: str = "PERSONAL",
    ) -> Account:
        account = Account(account_id, account_name, type, set(managers))
        with self._lock:
            self._accounts[account_id] = account
        return account

    def add_manager(self, account_id: str, email: str) -> None:
        """One more Google account may manage this business account (as when invited)."""
        with self._lock:
            self._accounts[account_id].managers.add(email)

    def add_location(
        self, account_id: str, location_id: str, title: str, **details: Any
    ) -> Location:
        """`details` are further Location fields in Google's camelCase, e.g. websiteUri."""
        unknown = set(details) - LOCATION_FIELDS
        if unknown:
            raise ValueError(f"not Location fields: {', '.join(sorted(unknown))}")
        with self._lock:
            if account_id not in self._accounts:
                raise KeyError(f"no account {account_id}; add it first")
            location = Location(location_id, account_id, title, details)
            self._locations[location_id] = location
        return location

    def add_review(self, location_id: str, review: Review) -> None:
        if not 1 <= review.star_rating <= len(STAR_RATINGS):
            raise ValueError("star_rating is 1 to 5")
        with self._lock:
            self._locations[location_id].reviews.append(review)

    def list_accounts(self, email: str, query: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            accounts = [a for a in self._accounts.values() if email in a.managers]
        page, next_token = paginate(accounts, query, default_size=20, max_size=20)
        return _page_body("accounts", [a.to_json() for a in page], next_token)

    def list_locations(
        self, email: str, account_id: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        mask = _read_mask(query)
        with self._lock:
            self._managed_account(email, account_id, BusinessApi.INFO)
            locations = [loc for loc in self._locations.values() if loc.account_id == account_id]
        page, next_token = paginate(locations, query, default_size=10, max_size=100)
        return _page_body(
            "locations", [mask_fields(loc.resource(), mask) for loc in page], next_token
        )

    def get_location(
        self, email: str, location_id: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        mask = _read_mask(query)
        with self._lock:
            location = self._managed_location(email, location_id, BusinessApi.INFO)
        return mask_fields(location.resource(), mask)

    def list_reviews(
        self, email: str, account_id: str, location_id: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        with self._lock:
            self._managed_account(email, account_id, BusinessApi.REVIEWS)
            location = self._managed_location(email, location_id, BusinessApi.REVIEWS)
            if location.account_id != account_id:
                raise ApiError.not_found(BusinessApi.REVIEWS.service)
            reviews = _ordered_reviews(location.reviews, query.get("orderBy"))
        page, next_token = paginate(reviews, query, default_size=50, max_size=50)
        path = f"accounts/{account_id}/{location.name}"
        body: dict[str, Any] = {}
        if page:
            body["reviews"] = [review.to_json(path) for review in page]
        body["averageRating"] = (
            round(sum(r.star_rating for r in reviews) / len(reviews), 1) if reviews else 0
        )
        body["totalReviewCount"] = len(reviews)
        if next_token:
            body["nextPageToken"] = next_token
        return body

    def _managed_account(self, email: str, account_id: str, api: BusinessApi) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise ApiError.not_found(api.service)
        if email not in account.managers:
            raise ApiError.permission_denied(api.service)
        return account

    def _managed_location(self, email: str, location_id: str, api: BusinessApi) -> Location:
        location = self._locations.get(location_id)
        if location is None:
            raise ApiError.not_found(api.service)
        self._managed_account(email, location.account_id, api)
        return location


def paginate(
    items: Sequence[T], query: Mapping[str, str], *, default_size: int, max_size: int
) -> tuple[list[T], str | None]:
    """One page of `items` per `pageSize`/`pageToken`, and the token of the next page.

    Like Google: a missing or zero pageSize means the default, one above the maximum is
    lowered to it, and a token is opaque (it still must be one this server handed out).
    """
    text = query.get("pageSize", "") or "0"
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise ApiError.invalid_argument("page_size", "Must be a non-negative integer.")
    size = min(size or default_size, max_size)
    start = _decode_page_token(query.get("pageToken", ""))
    end = start + size
    next_token = _encode_page_token(end) if end < len(items) else None
    return list(items[start:end]), next_token


def mask_fields(resource: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Only the fields a readMask names; dotted paths pick nested fields."""
    masked: dict[str, Any] = {}
    for path in paths:
        source: Any = resource
        target = masked
        *parents, leaf = path.split(".")
        for part in parents:
            if not isinstance(source, Mapping) or part not in source:
                break
            source = source[part]
            target = target.setdefault(part, {})
        else:
            if isinstance(source, Mapping) and leaf in source:
                target[leaf] = source[leaf]
    return masked


def _read_mask(query: Mapping[str, str]) -> list[str]:
    paths = [path.strip() for path in query.get("readMask", "").split(",") if path.strip()]
    if not paths:
        raise ApiError.invalid_argument("read_mask", "Field is required")
    invalid = [path for path in paths if path.split(".")[0] not in LOCATION_FIELDS]
    if invalid:
        raise ApiError.invalid_argument(
            "read_mask", f"Invalid field mask provided: {', '.join(invalid)}"
        )
    return paths


def _ordered_reviews(reviews: Iterable[Review], order_by: str | None) -> list[Review]:
    order = " ".join((order_by or "updateTime desc").split())
    if order == "updateTime desc":
        return sorted(reviews, key=lambda r: r.update_time, reverse=True)
    if order in ("rating", "rating desc"):
        return sorted(reviews, key=lambda r: r.star_rating, reverse=order.endswith("desc"))
    raise ApiError.invalid_argument(
        "order_by", "Must be one of: updateTime desc, rating, rating desc."
    )


def _page_body(key: str, items: list[dict[str, Any]], next_token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {key: items} if items else {}
    if next_token:
        body["nextPageToken"] = next_token
    return body


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        label, _, offset = text.partition(":")
        if label == "offset" and offset.isdigit():
            return int(offset)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise ApiError.invalid_argument("page_token", "Invalid page token.")


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
