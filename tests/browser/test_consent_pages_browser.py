"""Real Chromium: the sandbox consent page, Allow or Deny, then the callback's own page.

The consent URL is built by the operator's own `consent.authorization_url`; the callback runs
on a free port, handing over to a fake operator consent API that answers as the operator
does. Screenshots of every page land in the test's folder under test-output/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page

from devkit.servers import CallbackServer, SandboxServer
from fixtures.browser import screenshot
from fixtures.callback import ACCOUNT, DENIED, TOKEN_SECRET, FakeOperator
from fixtures.sandbox import OWNER
from google_token_operator.consent_state import pending as consent
from google_token_operator.settings import DEFAULT_SCOPES

CLIENT_ID = "200000000000-browsertest.apps.googleusercontent.com"
APP_NAME = "Review Fetcher (browser test)"


@pytest.fixture
def csp_violations(page: Page) -> Iterator[list[str]]:
    """What Chromium blocked under the pages' Content-Security-Policy (e.g. their style)."""
    violations: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", keep)
    yield violations


def consent_url(sandbox: SandboxServer, callback: CallbackServer) -> tuple[str, str]:
    """A consent URL as the operator publishes it, for a client registered for `callback`."""
    sandbox.state.register_client(
        CLIENT_ID, "browser-test-secret", [callback.callback_url], name=APP_NAME
    )
    fresh = consent.draw_fresh()
    state = fresh.state
    url = consent.authorization_url(
        sandbox.env["GOOGLE_OAUTH_AUTH_URI"],
        CLIENT_ID,
        callback.callback_url,
        DEFAULT_SCOPES,
        state,
        fresh.verifier,
        login_hint=None,
    )
    return url, state


def open_consent_page(page: Page, url: str, test_output: Path) -> None:
    page.goto(url)
    assert page.locator("#app-name").inner_text() == APP_NAME
    assert "See, edit, create and delete your Google business listings" in page.inner_text(
        "#scopes"
    )
    screenshot(page, test_output / "consent.png")


def choose(page: Page, button: str, callback: CallbackServer) -> int:
    """Press Allow or Deny; the status of the callback page the browser lands on."""
    with page.expect_response(lambda r: r.url.startswith(callback.callback_url + "?")) as landed:
        page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    status: int = landed.value.status
    return status


def test_allow_lands_on_the_success_page(
    page: Page,
    csp_violations: list[str],
    sandbox: SandboxServer,
    fake_operator: FakeOperator,
    callback_server: CallbackServer,
    test_output: Path,
) -> None:
    url, state = consent_url(sandbox, callback_server)
    open_consent_page(page, url, test_output)
    page.select_option("#email", OWNER)

    status = choose(page, "Allow", callback_server)

    screenshot(page, test_output / "success.png")
    assert status == 200
    assert page.title().startswith("Google account connected")
    assert page.inner_text("h1") == "Google account connected"
    text = page.inner_text("main")
    assert f"{ACCOUNT} authorized GoogleClient reviews/acme" in text
    assert f"Secret {TOKEN_SECRET} in namespace reviews" in text
    assert "within about a minute" in text
    [handover] = fake_operator.received
    assert handover["state"] == state
    assert handover["code"].startswith("4/sbx-")
    assert handover["error"] is None
    assert "business.manage" in handover["scope"]
    assert handover["code"] not in page.content()
    assert csp_violations == []


def test_deny_lands_on_the_denied_page(
    page: Page,
    csp_violations: list[str],
    sandbox: SandboxServer,
    fake_operator: FakeOperator,
    callback_server: CallbackServer,
    test_output: Path,
) -> None:
    url, state = consent_url(sandbox, callback_server)
    open_consent_page(page, url, test_output)

    status = choose(page, "Deny", callback_server)

    screenshot(page, test_output / "denied.png")
    assert status == 400
    assert page.inner_text("h1") == "Consent denied"
    text = page.inner_text("main")
    assert "not granted for GoogleClient reviews/acme, so nothing was stored" in text
    assert DENIED["message"] in text
    assert "google-token-operator authorize acme -n reviews" in text
    assert fake_operator.received == [
        {"state": state, "code": None, "error": "access_denied", "scope": None}
    ]
    assert csp_violations == []
