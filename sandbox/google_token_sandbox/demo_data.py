"""The sandbox's embedded default world: one demo OAuth client, two users, their businesses."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from .business import Review

if TYPE_CHECKING:
    from .state import SandboxState

# Made up for the sandbox; shaped like Google's so code that checks shapes accepts them.
DEMO_CLIENT_ID = "100000000000-sandboxdemo.apps.googleusercontent.com"
DEMO_CLIENT_SECRET = "GOCSPX-sandbox-demo-secret-0000"
DEMO_CLIENT_NAME = "Review Fetcher (sandbox demo)"
# The operator's default CALLBACK_URL, under both loopback spellings.
DEMO_REDIRECT_URIS = (
    "http://localhost:8080/oauth2/callback",
    "http://127.0.0.1:8080/oauth2/callback",
)

OWNER_EMAIL = "owner@example.com"
OTHER_EMAIL = "other@example.com"
OWNER_ACCOUNT_ID = "1234567890"
OWNER_LOCATION_IDS = ("1111111111", "2222222222", "3333333333")
OTHER_ACCOUNT_ID = "9876543210"
OTHER_LOCATION_ID = "9999999999"

_EPOCH = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)

# (location id, title, city, postal code, reviews as (reviewer, stars, comment, reply)).
_LOCATIONS = (
    (
        "1111111111",
        "Sandbox Bakery - Old Town",
        "Springfield",
        "12345",
        (
            ("Ada L.", 5, "Best croissants in town.", "Thank you, Ada!"),
            ("Grace H.", 4, "Great bread, long queue on Saturdays.", None),
            ("", 2, None, None),
            ("Linus T.", 3, "Fine coffee, small tables.", None),
        ),
    ),
    (
        "2222222222",
        "Sandbox Bakery - Harbour",
        "Springfield",
        "12346",
        (
            ("Margaret H.", 5, "Lovely view and friendly staff.", "See you soon!"),
            ("Ken T.", 1, "Closed although the hours said open.", "Sorry, Ken."),
        ),
    ),
    (
        "3333333333",
        "Sandbox Bakery - Station",
        "Shelbyville",
        "54321",
        (("Barbara L.", 4, "Quick service before my train.", None),),
    ),
)


def load_demo_data(state: SandboxState) -> None:
    state.register_client(
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS, name=DEMO_CLIENT_NAME
    )
    state.add_user(OWNER_EMAIL, name="Olive Owner")
    state.add_user(OTHER_EMAIL, name="Oscar Other")

    business = state.business
    business.add_account(OWNER_ACCOUNT_ID, "Sandbox Bakeries", [OWNER_EMAIL])
    for location_id, title, city, postal_code, reviews in _LOCATIONS:
        business.add_location(
            OWNER_ACCOUNT_ID,
            location_id,
            title,
            **_location_details(location_id, city, postal_code),
        )
        for number, (reviewer, stars, comment, reply) in enumerate(reviews):
            written = _EPOCH + dt.timedelta(days=7 * number, hours=int(location_id[0]))
            business.add_review(
                location_id,
                Review(
                    review_id=f"sbx-{location_id}-{number}",
                    reviewer=reviewer or "A Google user",
                    is_anonymous=not reviewer,
                    star_rating=stars,
                    comment=comment,
                    create_time=written,
                    update_time=written + dt.timedelta(hours=1),
                    reply=reply,
                ),
            )

    business.add_account(OTHER_ACCOUNT_ID, "Other Coffee Co.", [OTHER_EMAIL])
    business.add_location(
        OTHER_ACCOUNT_ID,
        OTHER_LOCATION_ID,
        "Other Coffee",
        **_location_details(OTHER_LOCATION_ID, "Capital City", "99999"),
    )
    business.add_review(
        OTHER_LOCATION_ID,
        Review(
            review_id=f"sbx-{OTHER_LOCATION_ID}-0",
            reviewer="Dennis R.",
            star_rating=5,
            comment="Strong espresso.",
            create_time=_EPOCH,
            update_time=_EPOCH,
        ),
    )


def _location_details(location_id: str, city: str, postal_code: str) -> dict[str, object]:
    return {
        "languageCode": "en",
        "storeCode": f"SBX-{location_id[:4]}",
        "websiteUri": f"https://example.com/locations/{location_id}",
        "phoneNumbers": {"primaryPhone": f"+1 555-01{location_id[:2]}"},
        "categories": {
            "primaryCategory": {"name": "categories/gcid:bakery", "displayName": "Bakery"}
        },
        "storefrontAddress": {
            "regionCode": "US",
            "postalCode": postal_code,
            "locality": city,
            "addressLines": [f"{int(location_id[0])} Main Street"],
        },
        "metadata": {
            "placeId": f"ChIJsandbox{location_id}",
            "mapsUri": f"https://maps.google.com/maps?cid={location_id}",
            "newReviewUri": f"https://search.google.com/local/writereview?placeid=ChIJsandbox{location_id}",
            "hasVoiceOfMerchant": True,
        },
    }
