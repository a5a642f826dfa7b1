"""The authorization endpoint's pages: the consent page with plain HTML forms, error pages."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import requests

from devkit.servers import SandboxServer
from fixtures.sandbox import (
    OTHER,
    OWNER,
    REDIRECT_URI,
    TIMEOUT,
    authorization_params,
    exchange,
    redirect_query,
)
from google_token_sandbox import AUTH_PATH
from google_token_sandbox.state import (
    BUSINESS_SCOPE,
    DEMO_CLIENT_ID,
    DEMO_REDIRECT_URIS,
    EMAIL_SCOPE,
)


@dataclasses.dataclass
class Form:
    id: str
    method: str
    action: str
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    buttons: list[str] = dataclasses.field(default_factory=list)
    # The values of its checkboxes (name "scope") that are ticked.
    ticked: list[str] = dataclasses.field(default_factory=list)


class FormParser(HTMLParser):
    """Forms, their fields and buttons, including those tied to a form by a `form` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, Form] = {}
        self.selects: dict[str, list[str]] = {}  # select name -> its option values
        self._fields: list[tuple[str, str, str]] = []  # (form id, name, value)
        self._form_id: str | None = None
        self._select: tuple[str, str] | None = None  # (form id, name)
        self._button: tuple[str, list[str]] | None = None  # (form id, its text so far)
        self._buttons: list[tuple[str, str]] = []  # (form id, text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form_id = attr["id"]
            self.forms[self._form_id] = Form(self._form_id, attr["method"], attr["action"])
        owner = attr.get("form", self._form_id or "")
        if tag == "input" and attr.get("type") == "checkbox":
            if "checked" in attr:
                self.forms[owner].ticked.append(attr["value"])
        elif tag == "input":
            self._fields.append((owner, attr["name"], attr.get("value", "")))
        elif tag == "select":
            self._select = (owner, attr["name"])
            self.selects[attr["name"]] = []
        elif tag == "option" and self._select is not None:
            form_id, name = self._select
            if not self.selects[name]:  # the first option is the one selected
                self._fields.append((form_id, name, attr["value"]))
            self.selects[name].append(attr["value"])
        elif tag == "button":
            self._button = (owner, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form_id = None
        elif tag == "select":
            self._select = None
        elif tag == "button" and self._button is not None:
            form_id, text = self._button
            self._buttons.append((form_id, "".join(text).strip()))
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[1].append(data)

    def close(self) -> None:
        super().close()
        for form_id, name, value in self._fields:
            self.forms[form_id].fields[name] = value
        for form_id, text in self._buttons:
            self.forms[form_id].buttons.append(text)


def open_consent_page(sandbox: SandboxServer, **overrides: str | None) -> requests.Response:
    return requests.get(
        sandbox.url + AUTH_PATH,
        params=authorization_params(**overrides),
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def parse(response: requests.Response) -> FormParser:
    parser = FormParser()
    parser.feed(response.text)
    parser.close()
    return parser


def submit(sandbox: SandboxServer, form: Form) -> requests.Response:
    data = [*form.fields.items(), *(("scope", scope) for scope in form.ticked)]
    return requests.post(
        sandbox.url + form.action, data=data, allow_redirects=False, timeout=TIMEOUT
    )


def test_the_consent_page_renders_allow_and_deny_as_plain_forms(sandbox: SandboxServer) -> None:
    response = open_consent_page(sandbox, state="secret-state", code_challenge="c" * 43)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = parse(response)
    assert set(page.forms) == {"allow", "deny"}
    for form, button in ((page.forms["allow"], "Allow"), (page.forms["deny"], "Deny")):
        assert form.method == "post"
        assert form.buttons == [button]
        assert form.fields["request_id"]
    # The forms carry an opaque id, never the request's own parameters.
    hidden = " ".join(value for form in page.forms.values() for value in form.fields.values())
    assert "secret-state" not in hidden
    assert "c" * 43 not in hidden


def test_the_consent_page_names_the_app_the_scopes_and_the_accounts(
    sandbox: SandboxServer,
) -> None:
    response = open_consent_page(sandbox)

    assert "Review Fetcher (sandbox demo)" in response.text
    assert "See, edit, create and delete your Google business listings" in response.text
    assert "See your primary Google Account email address" in response.text
    assert parse(response).selects["email"] == [OWNER, OTHER]


def test_a_login_hint_preselects_the_account(sandbox: SandboxServer) -> None:
    page = parse(open_consent_page(sandbox, login_hint=OTHER))

    assert page.forms["allow"].fields["email"] == OTHER
    assert "email" not in page.selects


def test_allow_redirects_with_a_code_that_exchanges(sandbox: SandboxServer) -> None:
    allow = parse(open_consent_page(sandbox, login_hint=OTHER)).forms["allow"]

    response = submit(sandbox, allow)

    assert response.status_code == 302
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    query = redirect_query(response)
    assert query["state"] == "state-123"
    assert query["code"].startswith("4/")
    assert query["scope"]
    assert exchange(sandbox, query["code"]).status_code == 200
    assert sandbox.state.counts["consent"] == 1


def test_allow_as_the_account_chosen_in_the_select(sandbox: SandboxServer) -> None:
    allow = parse(open_consent_page(sandbox)).forms["allow"]
    allow.fields["email"] = OTHER

    code = redirect_query(submit(sandbox, allow))["code"]

    access = exchange(sandbox, code).json()["access_token"]
    userinfo = requests.get(
        sandbox.env["GOOGLE_USERINFO_URI"],
        headers={"Authorization": f"Bearer {access}"},
        timeout=TIMEOUT,
    )
    assert userinfo.json()["email"] == OTHER


def test_deny_redirects_with_access_denied(sandbox: SandboxServer) -> None:
    deny = parse(open_consent_page(sandbox)).forms["deny"]

    response = submit(sandbox, deny)

    assert response.status_code == 302
    assert redirect_query(response) == {"error": "access_denied", "state": "state-123"}


def test_a_consent_form_works_once(sandbox: SandboxServer) -> None:
    allow = parse(open_consent_page(sandbox, login_hint=OWNER)).forms["allow"]
    assert submit(sandbox, allow).status_code == 302

    again = submit(sandbox, allow)

    assert again.status_code == 400
    assert "Error 400: invalid_request" in again.text


def test_auto_approve_skips_the_page(sandbox: SandboxServer) -> None:
    sandbox.state.auto_approve = True

    response = open_consent_page(sandbox, login_hint=OTHER)

    assert response.status_code == 302
    assert "code" in redirect_query(response)
    assert sandbox.state.counts["consent"] == 0


def test_an_unknown_client_gets_googles_error_page(sandbox: SandboxServer) -> None:
    response = open_consent_page(sandbox, client_id="nobody.apps.googleusercontent.com")

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Error 401: invalid_client" in response.text
    assert "The OAuth client was not found." in response.text


def test_row_redirect_uri_not_registered_shows_an_error_page_without_redirecting(
    sandbox: SandboxServer,
) -> None:
    sandbox.state.auto_approve = True

    response = open_consent_page(sandbox, redirect_uri="http://evil.example/callback")

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Error 400: redirect_uri_mismatch" in response.text
    assert "redirect_uri=http://evil.example/callback" in response.text


def test_other_bad_requests_get_error_pages(sandbox: SandboxServer) -> None:
    for overrides, shown in (
        ({"scope": None}, "Error 400: invalid_request"),
        ({"scope": "openid https://evil.example/scope"}, "Error 400: invalid_scope"),
        ({"response_type": "token"}, "Error 400: unsupported_response_type"),
        ({"code_challenge_method": "S512"}, "Error 400: invalid_request"),
        ({"access_type": "forever"}, "Error 400: invalid_request"),
    ):
        response = open_consent_page(sandbox, **overrides)
        assert response.status_code == 400, overrides
        assert shown in response.text, overrides


def test_page_text_is_escaped(sandbox: SandboxServer) -> None:
    sandbox.state.register_client(
        DEMO_CLIENT_ID, "secret", DEMO_REDIRECT_URIS, name="<script>alert(1)</script>"
    )

    response = open_consent_page(sandbox)

    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_every_scope_but_the_sign_in_ones_is_a_ticked_checkbox_in_the_allow_form(
    sandbox: SandboxServer,
) -> None:
    page = parse(open_consent_page(sandbox))

    assert page.forms["allow"].ticked == [BUSINESS_SCOPE]
    assert page.forms["deny"].ticked == []


def test_an_unticked_scope_is_left_out_of_the_grant(sandbox: SandboxServer) -> None:
    allow = parse(open_consent_page(sandbox, login_hint=OWNER)).forms["allow"]
    allow.ticked = []

    query = redirect_query(submit(sandbox, allow))

    assert set(query["scope"].split()) == {"openid", EMAIL_SCOPE}
    answer = exchange(sandbox, query["code"]).json()
    assert set(answer["scope"].split()) == {"openid", EMAIL_SCOPE}


def test_a_ticked_scope_that_was_not_requested_is_not_granted(sandbox: SandboxServer) -> None:
    allow = parse(open_consent_page(sandbox, login_hint=OWNER)).forms["allow"]
    allow.ticked.append("https://www.googleapis.com/auth/drive")

    query = redirect_query(submit(sandbox, allow))

    assert set(query["scope"].split()) == {"openid", EMAIL_SCOPE, BUSINESS_SCOPE}
