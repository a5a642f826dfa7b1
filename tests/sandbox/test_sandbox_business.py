"""The sandbox's Business Profile APIs over real HTTP: data, paging, readMask, errors, quota."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import requests

from devkit.servers import SandboxServer
from fixtures.sandbox import OTHER, OWNER, TIMEOUT, access_token
from google_token_sandbox.business import Review
from google_token_sandbox.state import DEMO_CLIENT_ID

ACCOUNT = "1234567890"
LOCATIONS = ("1111111111", "2222222222", "3333333333")
OTHER_ACCOUNT = "9876543210"
OTHER_LOCATION = "9999999999"


def call(
    sandbox: SandboxServer, path: str, token: str | None = None, **params: str
) -> requests.Response:
    """GET a Business Profile path as the owner (or with `token`, "" for none)."""
    if token is None:
        token = access_token(sandbox)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=TIMEOUT)


def assert_api_error(
    response: requests.Response, code: int, status: str, reason: str | None = None
) -> dict[str, Any]:
    assert response.status_code == code, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert error["message"]
    if reason is not None:
        (info,) = error["details"]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert (info["reason"], info["domain"]) == (reason, "googleapis.com")
    return error


def all_pages(sandbox: SandboxServer, path: str, key: str, **params: str) -> list[list[Any]]:
    token = access_token(sandbox)
    pages: list[list[Any]] = []
    while True:
        body = call(sandbox, path, token, **params).json()
        pages.append(body.get(key, []))
        if "nextPageToken" not in body:
            return pages
        params["pageToken"] = body["nextPageToken"]


# -- accounts -----------------------------------------------------------------------------


def test_accounts_list_shows_only_the_callers_accounts(sandbox: SandboxServer) -> None:
    owner = call(sandbox, "/v1/accounts").json()
    other = call(sandbox, "/v1/accounts", access_token(sandbox, OTHER)).json()

    assert [a["name"] for a in owner["accounts"]] == [f"accounts/{ACCOUNT}"]
    assert owner["accounts"][0]["accountName"]
    assert owner["accounts"][0]["type"] == "PERSONAL"
    assert [a["name"] for a in other["accounts"]] == [f"accounts/{OTHER_ACCOUNT}"]
    assert "nextPageToken" not in owner


def test_accounts_page_size_defaults_to_and_stops_at_20(sandbox: SandboxServer) -> None:
    for number in range(24):
        sandbox.state.business.add_account(f"5{number:09d}", f"Group {number}", [OWNER])

    default = all_pages(sandbox, "/v1/accounts", "accounts")
    oversized = all_pages(sandbox, "/v1/accounts", "accounts", pageSize="100")
    small = all_pages(sandbox, "/v1/accounts", "accounts", pageSize="7")

    assert [len(page) for page in default] == [20, 5]
    assert [len(page) for page in oversized] == [20, 5]
    assert [len(page) for page in small] == [7, 7, 7, 4]
    names = [account["name"] for page in small for account in page]
    assert len(set(names)) == 25


def test_paging_refuses_a_bad_page_token_or_size(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    assert_api_error(
        call(sandbox, "/v1/accounts", token, pageToken="not-ours"), 400, "INVALID_ARGUMENT"
    )
    assert_api_error(call(sandbox, "/v1/accounts", token, pageSize="-1"), 400, "INVALID_ARGUMENT")


# -- locations ----------------------------------------------------------------------------


def test_locations_need_a_read_mask(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    for path in (f"/v1/accounts/{ACCOUNT}/locations", f"/v1/locations/{LOCATIONS[0]}"):
        error = assert_api_error(call(sandbox, path, token), 400, "INVALID_ARGUMENT")
        (violation,) = error["details"][0]["fieldViolations"]
        assert violation["field"] == "read_mask"


def test_locations_list_answers_only_the_masked_fields(sandbox: SandboxServer) -> None:
    body = call(sandbox, f"/v1/accounts/{ACCOUNT}/locations", readMask="name,title").json()

    assert [loc["name"] for loc in body["locations"]] == [f"locations/{i}" for i in LOCATIONS]
    assert all(set(loc) == {"name", "title"} for loc in body["locations"])


def test_locations_list_pages_by_10_up_to_100(sandbox: SandboxServer) -> None:
    for number in range(105):
        sandbox.state.business.add_location(ACCOUNT, f"7{number:09d}", f"Kiosk {number}")
    path = f"/v1/accounts/{ACCOUNT}/locations"

    default = all_pages(sandbox, path, "locations", readMask="name")
    oversized = all_pages(sandbox, path, "locations", readMask="name", pageSize="1000")

    assert [len(page) for page in default] == [10] * 10 + [8]
    assert [len(page) for page in oversized] == [100, 8]


def test_location_get_with_nested_mask(sandbox: SandboxServer) -> None:
    response = call(
        sandbox,
        f"/v1/locations/{LOCATIONS[0]}",
        readMask="name,title,storefrontAddress.locality,metadata",
    )

    location = response.json()
    assert location["name"] == f"locations/{LOCATIONS[0]}"
    assert location["title"]
    assert set(location["storefrontAddress"]) == {"locality"}
    assert location["metadata"]["placeId"]
    assert "websiteUri" not in location


def test_location_get_refuses_an_unknown_mask_field(sandbox: SandboxServer) -> None:
    response = call(sandbox, f"/v1/locations/{LOCATIONS[0]}", readMask="title,secretField")

    assert_api_error(response, 400, "INVALID_ARGUMENT")


def test_a_location_of_another_user_is_permission_denied(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    for path in (
        f"/v1/locations/{OTHER_LOCATION}",
        f"/v1/accounts/{OTHER_ACCOUNT}/locations",
        f"/v4/accounts/{ACCOUNT}/locations/{OTHER_LOCATION}/reviews",
    ):
        response = call(sandbox, path, token, readMask="name")
        assert_api_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")


def test_unknown_resources_are_not_found(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    for path in (
        "/v1/locations/404404404",
        "/v1/accounts/404404404/locations",
        f"/v4/accounts/{ACCOUNT}/locations/404404404/reviews",
    ):
        assert_api_error(call(sandbox, path, token, readMask="name"), 404, "NOT_FOUND", "NOT_FOUND")


# -- reviews ------------------------------------------------------------------------------


def reviews_path(location: str = LOCATIONS[0]) -> str:
    return f"/v4/accounts/{ACCOUNT}/locations/{location}/reviews"


def test_reviews_answer_googles_fields_newest_first(sandbox: SandboxServer) -> None:
    body = call(sandbox, reviews_path()).json()

    reviews = body["reviews"]
    assert body["totalReviewCount"] == len(reviews) == 4
    assert body["averageRating"] == 3.5
    update_times = [review["updateTime"] for review in reviews]
    assert update_times == sorted(update_times, reverse=True)
    first = reviews[0]
    assert (
        first["name"] == f"accounts/{ACCOUNT}/locations/{LOCATIONS[0]}/reviews/{first['reviewId']}"
    )
    assert set(first["reviewer"]) == {"displayName", "isAnonymous"}
    assert {review["starRating"] for review in reviews} <= {"ONE", "TWO", "THREE", "FOUR", "FIVE"}
    assert any(review["reviewer"]["isAnonymous"] for review in reviews)
    assert any("reviewReply" in review for review in reviews)
    assert any("comment" not in review for review in reviews)


def test_reviews_order_by_rating(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    ascending = call(sandbox, reviews_path(), token, orderBy="rating").json()["reviews"]
    descending = call(sandbox, reviews_path(), token, orderBy="rating desc").json()["reviews"]
    wrong = call(sandbox, reviews_path(), token, orderBy="reviewer")

    assert [r["starRating"] for r in ascending] == ["TWO", "THREE", "FOUR", "FIVE"]
    assert [r["starRating"] for r in descending] == ["FIVE", "FOUR", "THREE", "TWO"]
    assert_api_error(wrong, 400, "INVALID_ARGUMENT")


def test_reviews_page_by_at_most_50(sandbox: SandboxServer) -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    for number in range(56):
        written = start + dt.timedelta(hours=number)
        review = Review(f"bulk-{number}", "Bulk", 4, written, written, comment="ok")
        sandbox.state.business.add_review(LOCATIONS[2], review)

    default = all_pages(sandbox, reviews_path(LOCATIONS[2]), "reviews")
    small = all_pages(sandbox, reviews_path(LOCATIONS[2]), "reviews", pageSize="20")

    assert [len(page) for page in default] == [50, 7]
    assert [len(page) for page in small] == [20, 20, 17]


def test_reviews_need_the_location_in_that_account(sandbox: SandboxServer) -> None:
    sandbox.state.business.add_account("5555555555", "Second group", [OWNER])

    response = call(sandbox, f"/v4/accounts/5555555555/locations/{LOCATIONS[0]}/reviews")

    assert_api_error(response, 404, "NOT_FOUND")


# -- authentication, scopes, quota, faults ------------------------------------------------


def test_a_call_without_a_token_is_unauthenticated(sandbox: SandboxServer) -> None:
    response = call(sandbox, "/v1/accounts", token="")

    assert_api_error(response, 401, "UNAUTHENTICATED", "CREDENTIALS_MISSING")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_an_unknown_or_revoked_token_is_unauthenticated(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)
    sandbox.state.revoke_grants(DEMO_CLIENT_ID)

    for bad in ("ya29.made-up", token):
        response = call(sandbox, "/v1/accounts", token=bad)
        assert_api_error(response, 401, "UNAUTHENTICATED", "ACCESS_TOKEN_TYPE_UNSUPPORTED")


def test_an_expired_token_is_unauthenticated(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)
    sandbox.state.clock = lambda: time.time() + 3600

    response = call(sandbox, f"/v1/locations/{LOCATIONS[0]}", token, readMask="name")

    assert_api_error(response, 401, "UNAUTHENTICATED", "ACCESS_TOKEN_EXPIRED")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_without_the_business_scope_is_denied(sandbox: SandboxServer) -> None:
    token = access_token(sandbox, scopes=("openid", "email"))

    response = call(sandbox, "/v1/accounts", token)

    assert_api_error(response, 403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")


def test_each_api_has_its_own_per_minute_quota(sandbox: SandboxServer) -> None:
    sandbox.state.api_quota_per_minute = 3
    token = access_token(sandbox)
    location = f"/v1/locations/{LOCATIONS[0]}"

    allowed = [call(sandbox, location, token, readMask="name") for _ in range(3)]
    refused = call(sandbox, location, token, readMask="name")
    other_api = call(sandbox, "/v1/accounts", token)
    sandbox.state.clock = lambda: time.time() + 61
    next_minute = call(sandbox, location, token, readMask="name")

    assert [response.status_code for response in allowed] == [200, 200, 200]
    error = assert_api_error(refused, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
    assert (
        error["details"][0]["metadata"]["service"] == "mybusinessbusinessinformation.googleapis.com"
    )
    assert other_api.status_code == 200
    assert next_minute.status_code == 200


@pytest.mark.parametrize(("status", "rpc_status"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_injected_faults_answer_in_the_api_shape(
    sandbox: SandboxServer, status: int, rpc_status: str
) -> None:
    token = access_token(sandbox)
    sandbox.state.inject_faults("reviews.list", status=status, retry_after=2)

    failed = call(sandbox, reviews_path(), token)
    recovered = call(sandbox, reviews_path(), token)

    assert_api_error(failed, status, rpc_status)
    assert failed.headers["Retry-After"] == "2"
    assert recovered.status_code == 200


def test_counts_per_business_endpoint(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)
    call(sandbox, "/v1/accounts", token)
    call(sandbox, f"/v1/accounts/{ACCOUNT}/locations", token, readMask="name")
    call(sandbox, f"/v1/locations/{LOCATIONS[0]}", token, readMask="name")
    call(sandbox, f"/v1/locations/{LOCATIONS[1]}", token)  # refused, still counted
    call(sandbox, reviews_path(), token)

    counts = sandbox.state.counts
    assert (counts["accounts.list"], counts["locations.list"]) == (1, 1)
    assert (counts["locations.get"], counts["reviews.list"]) == (2, 1)


def test_the_three_api_bases_all_reach_the_sandbox(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {access_token(sandbox)}"}

    for variable, path in (
        ("GOOGLE_BUSINESS_ACCOUNT_API", "/v1/accounts"),
        ("GOOGLE_BUSINESS_INFO_API", f"/v1/locations/{LOCATIONS[0]}?readMask=name"),
        ("GOOGLE_BUSINESS_REVIEWS_API", reviews_path()),
    ):
        response = requests.get(sandbox.env[variable] + path, headers=headers, timeout=TIMEOUT)
        assert response.ok, response.text
