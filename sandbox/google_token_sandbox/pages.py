"""The HTML pages of the authorization endpoint: the consent page and Google's error page."""

from __future__ import annotations

import string

from google_token_operator.html_templates import escaped, template

from . import CONSENT_PATH
from .errors import AuthorizationError
from .state import BUSINESS_SCOPE, EMAIL_SCOPE, SCOPE_ALIASES, ConsentPage

# What Google's consent screen says for each scope; others show their URL.
_SCOPE_DESCRIPTIONS = {
    "openid": "Associate you with your personal info on Google",
    EMAIL_SCOPE: "See your primary Google Account email address",
    SCOPE_ALIASES["profile"]: "See your personal info, including any personal info you've "
    "made publicly available",
    BUSINESS_SCOPE: "See, edit, create and delete your Google business listings",
}


def consent_page(page: ConsentPage) -> str:
    return _template("consent.html").substitute(
        app_name=escaped(page.app_name),
        account_chooser=_account_chooser(page),
        scope_items="\n".join(
            _scope_item(scope, scope in page.untickable) for scope in page.scopes
        ),
        consent_path=CONSENT_PATH,
        request_id=escaped(page.request_id),
    )


def error_page(error: AuthorizationError) -> str:
    return _template("error.html").substitute(
        shown_code=error.shown_code,
        error=escaped(error.error),
        description=escaped(error.description),
    )


def _scope_item(scope: str, untickable: bool) -> str:
    """An untickable scope gets a checkbox, ticked (Google's granular consent); the others
    are listed."""
    description = escaped(_SCOPE_DESCRIPTIONS.get(scope, scope))
    if not untickable:
        return f"      <li>{description}</li>"
    return (
        f'      <li><label><input type="checkbox" name="scope" value="{escaped(scope)}" checked> '
        f"{description}</label></li>"
    )


def _account_chooser(page: ConsentPage) -> str:
    """The account the Allow form signs in with (fields tied to it by `form="allow"`)."""
    if page.login_hint:
        return (
            f"Signed in as <strong>{escaped(page.login_hint)}</strong>"
            f'<input type="hidden" name="email" value="{escaped(page.login_hint)}" form="allow">'
        )
    options = "".join(
        f'<option value="{escaped(email)}">{escaped(email)}</option>' for email in page.accounts
    )
    return (
        '<label for="email">Choose an account</label> '
        f'<select id="email" name="email" form="allow">{options}</select>'
    )


def _template(name: str) -> string.Template:
    return template(__package__ or "", name)
