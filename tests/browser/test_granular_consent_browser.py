"""Real Chromium on the sandbox's consent page alone: unticking a permission, as Google's
granular consent lets a person do, leaves it out of the grant.

No operator and no callback: the browser's arrival at the redirect URI is answered by
Playwright, and the test exchanges the code itself.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from playwright.sync_api import Page, Route

from devkit.servers import SandboxServer
from fixtures.browser import screenshot
from fixtures.sandbox import OWNER, REDIRECT_URI, TIMEOUT, authorization_params, exchange
from google_token_sandbox import AUTH_PATH
from google_token_sandbox.state import BUSINESS_SCOPE, EMAIL_SCOPE


def consent_in_chromium(
    page: Page, sandbox: SandboxServer, untick: bool, screenshot_to: Path | None = None
) -> dict[str, str]:
    """Open the consent page, untick the Business scope if asked, press Allow; the query
    of the redirect back to the client."""
    landed: list[str] = []

    def arrive(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="back at the client")

    def at_the_client(url: str) -> bool:
        return url.startswith(REDIRECT_URI + "?")

    page.route(at_the_client, arrive)
    url = requests.Request(
        "GET", sandbox.url + AUTH_PATH, params=authorization_params(login_hint=OWNER)
    ).prepare()
    page.goto(str(url.url))
    business = page.get_by_role(
        "checkbox", name="See, edit, create and delete your Google business listings"
    )
    assert business.is_checked()
    if untick:
        business.uncheck()
    if screenshot_to:
        screenshot(page, screenshot_to)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(at_the_client)
    [location] = landed
    return dict(parse_qsl(urlsplit(location).query))


def test_unticking_business_manage_leaves_it_out_of_the_token_answer(
    page: Page, sandbox: SandboxServer, test_output: Path
) -> None:
    query = consent_in_chromium(
        page, sandbox, untick=True, screenshot_to=test_output / "unticked.png"
    )

    answer = exchange(sandbox, query["code"])

    assert answer.status_code == 200, answer.text
    assert set(answer.json()["scope"].split()) == {"openid", EMAIL_SCOPE}
    assert set(query["scope"].split()) == {"openid", EMAIL_SCOPE}
    business_call = requests.get(
        sandbox.url + "/v1/accounts",
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        timeout=TIMEOUT,
    )
    assert business_call.status_code == 403


def test_leaving_the_ticks_grants_every_requested_scope(page: Page, sandbox: SandboxServer) -> None:
    query = consent_in_chromium(page, sandbox, untick=False)

    answer = exchange(sandbox, query["code"])

    assert set(answer.json()["scope"].split()) == {"openid", EMAIL_SCOPE, BUSINESS_SCOPE}
