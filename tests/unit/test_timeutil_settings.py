import datetime as dt
import json
import logging
from collections.abc import Iterator

import pytest

from google_token_operator.logs import configure as configure_logging
from google_token_operator.settings import ENDPOINT_VARIABLES, Settings, SettingsError
from google_token_operator.timeutil import format_rfc3339, parse_duration, parse_rfc3339


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "15", "-5m", "1d", "m5", "1h 30m"])
def test_parse_duration_rejects(text: str):
    with pytest.raises(ValueError, match="use a form like"):
        parse_duration(text)


def test_rfc3339_round_trip_is_utc_with_z():
    moment = dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    text = format_rfc3339(moment)
    assert text == "2026-03-04T03:06:07Z"
    assert parse_rfc3339(text) == moment.replace(microsecond=0)


def test_defaults_are_googles_real_endpoints():
    settings = Settings.from_env({})
    assert settings.google.token_uri == "https://oauth2.googleapis.com/token"
    assert settings.google.auth_uri == "https://accounts.google.com/o/oauth2/v2/auth"
    assert (
        settings.google.business_info_api == "https://mybusinessbusinessinformation.googleapis.com"
    )
    assert settings.consent_ttl == dt.timedelta(minutes=15)


def test_every_endpoint_variable_is_read():
    env = {name: f"http://127.0.0.1:9/{name.lower()}" for name in ENDPOINT_VARIABLES}
    settings = Settings.from_env(env)
    for name, field in ENDPOINT_VARIABLES.items():
        assert getattr(settings.google, field) == env[name]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GOOGLE_OAUTH_TOKEN_URI": "oauth2.googleapis.com/token"}, "GOOGLE_OAUTH_TOKEN_URI"),
        ({"CALLBACK_URL": "ftp://x/cb"}, "CALLBACK_URL"),
        ({"CONSENT_TTL": "-5m"}, "CONSENT_TTL"),
        ({"CONSENT_TTL": "0s"}, "CONSENT_TTL"),
        ({"LOCATION_CHECK_INTERVAL": "soon"}, "LOCATION_CHECK_INTERVAL"),
        ({"CALLBACK_ALWAYS_ON": "maybe"}, "CALLBACK_ALWAYS_ON"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"CALLBACK_IMAGE_PULL_SECRETS": "regcred, Bad_Name"}, "CALLBACK_IMAGE_PULL_SECRETS"),
        ({"CALLBACK_RESOURCES": "{requests: {}}"}, "CALLBACK_RESOURCES"),
        ({"CALLBACK_RESOURCES": '{"requests": {"cpu": "lots"}}'}, "CALLBACK_RESOURCES"),
        ({"CALLBACK_RESOURCES": '{"cpu": "10m"}'}, "CALLBACK_RESOURCES"),
        ({"CALLBACK_RESOURCES": '{"limits": {"memory": true}}'}, "CALLBACK_RESOURCES"),
        ({"CALLBACK_NODE_SELECTOR": '["linux"]'}, "CALLBACK_NODE_SELECTOR"),
        ({"CALLBACK_NODE_SELECTOR": '{"disk": 1}'}, "CALLBACK_NODE_SELECTOR"),
        ({"CALLBACK_TOLERATIONS": '{"key": "k"}'}, "CALLBACK_TOLERATIONS"),
        ({"CALLBACK_TOLERATIONS": '[{"key": "k", "colour": "red"}]'}, "CALLBACK_TOLERATIONS"),
        ({"CALLBACK_TOLERATIONS": '[{"tolerationSeconds": "60"}]'}, "CALLBACK_TOLERATIONS"),
        ({"CALLBACK_PRIORITY_CLASS_NAME": "High Priority"}, "CALLBACK_PRIORITY_CLASS_NAME"),
        ({"CALLBACK_TRUST_PROXY": "sometimes"}, "CALLBACK_TRUST_PROXY"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_callback_workload_settings_are_read_typed():
    settings = Settings.from_env(
        {
            "CALLBACK_IMAGE_PULL_SECRETS": "regcred, mirror-pull",
            "CALLBACK_RESOURCES": '{"requests": {"cpu": 0.1, "memory": "64Mi"}}',
            "CALLBACK_NODE_SELECTOR": '{"node-role/edge": "true"}',
            "CALLBACK_TOLERATIONS": '[{"key": "edge", "operator": "Exists", '
            '"tolerationSeconds": 30}]',
            "CALLBACK_PRIORITY_CLASS_NAME": "consent-critical",
            "CALLBACK_TRUST_PROXY": "true",
        }
    )
    assert settings.callback_image_pull_secrets == ("regcred", "mirror-pull")
    assert settings.callback_resources == {"requests": {"cpu": "0.1", "memory": "64Mi"}}
    assert settings.callback_node_selector == {"node-role/edge": "true"}
    assert settings.callback_tolerations == (
        {"key": "edge", "operator": "Exists", "tolerationSeconds": 30},
    )
    assert settings.callback_priority_class_name == "consent-critical"
    assert settings.callback_trust_proxy is True
    unset = Settings.from_env({})
    assert (
        unset.callback_image_pull_secrets,
        unset.callback_resources,
        unset.callback_node_selector,
        unset.callback_tolerations,
        unset.callback_priority_class_name,
        unset.callback_trust_proxy,
    ) == ((), None, {}, (), "", False)


def test_watch_namespaces_list():
    settings = Settings.from_env({"WATCH_NAMESPACES": " a, b ,,c "})
    assert settings.watch_namespaces == ("a", "b", "c")


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["plain", "full", "json"])
def test_each_log_line_about_an_object_names_it(log_format: str, root_handlers: None) -> None:
    before = set(logging.getLogger().handlers)
    configure_logging(False, log_format)
    (handler,) = set(logging.getLogger().handlers) - before
    record = logging.LogRecord("kopf.objects", logging.WARNING, "", 0, "refresh failed", (), None)
    record.k8s_ref = {"namespace": "team", "name": "acme"}
    line = handler.format(record)
    if log_format == "json":
        assert json.loads(line)["object"]["name"] == "acme"
    else:
        assert line.endswith("[team/acme] refresh failed")
