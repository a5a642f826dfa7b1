"""`spec.secretTemplate`: extra labels, annotations and data keys of a consumer Secret (pure).

The CRDs refuse a bad template first; the operator checks again (an object admitted by an
older CRD, or written around it, must not reach a Secret). A placeholder is `{{ name }}` with
optional spaces; the names are fixed and none of them is a refresh token or a client secret:
the values come only from `template_values`, which is never given one. Labels and annotations
are literal. Why this small substitution and not Jinja: docs/design/secret-templates.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from . import GROUP
from .naming import MANAGED_BY_LABEL

# The placeholders of each kind, in the order the documentation lists them.
CLIENT_PLACEHOLDERS = ("access_token", "expiry", "token_type", "scopes", "account_email")
BRANCH_PLACEHOLDERS = (*CLIENT_PLACEHOLDERS, "account_id", "location_id", "location_name")
# The keys the operator writes itself: a template may not override them (either kind).
STANDARD_KEYS = frozenset(
    {
        "access_token",
        "expiry",
        "token_type",
        "scopes",
        "token.json",
        "account_id",
        "location_id",
        "location_name",
    }
)

# Bounds, the same as the CRDs': a template is small, and a Secret stays far below 1 MiB.
MAX_ENTRIES = 32  # labels, annotations: each
MAX_DATA_KEYS = 16
MAX_TEMPLATE_LENGTH = 4096  # one data template
# Placeholders in one data template: with the bounds above and tokens of at most 4096
# characters (google_types), the rendered keys stay below 600 KiB, inside a Secret's 1 MiB.
MAX_PLACEHOLDERS = 8
MAX_ANNOTATION_LENGTH = 4096  # one annotation value
MAX_LABEL_VALUE = 63
MAX_SECRET_KEY = 253

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
# A label or annotation key: an optional DNS-subdomain prefix and a name (Kubernetes'
# qualified name).
QUALIFIED_NAME = re.compile(rf"({_DNS_SUBDOMAIN}/)?{_NAME}")
LABEL_VALUE = re.compile(rf"({_NAME})?")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def template_pattern(names: tuple[str, ...]) -> str:
    """The whole-value pattern of a data template (the CRDs carry the same text): text where
    every `{{` opens one of `names`' placeholders, at most MAX_PLACEHOLDERS of them."""
    text = r"(?:[^{]|\{[^{])*"
    placeholder = rf"\{{\{{ *(?:{'|'.join(names)}) *\}}\}}"
    return rf"{text}(?:{placeholder}{text}){{0,{MAX_PLACEHOLDERS}}}\{{?"


_PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


@dataclasses.dataclass(frozen=True)
class SecretTemplate:
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # What the template asked for that the operator keeps for itself, for a person to read.
    ignored: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """Said in the Ready message while the template tries to set the operator's own."""
        if not self.ignored:
            return ""
        return (
            f"; spec.secretTemplate: {', '.join(self.ignored)} not applied (the operator's own "
            "labels and annotations win; remove them from the template)"
        )


NO_TEMPLATE = SecretTemplate()


@dataclasses.dataclass(frozen=True)
class TemplateProblem:
    """Why the template cannot be used; names the field and the fix."""

    message: str


class _Refused(ValueError):
    pass


def parse_secret_template(spec: Mapping[str, Any], kind: str) -> SecretTemplate | TemplateProblem:
    """`spec.secretTemplate` of a GoogleClient or a Branch (`kind`), checked in full."""
    raw = spec.get("secretTemplate")
    if raw is None:
        return NO_TEMPLATE
    try:
        template = _mapping(raw, "spec.secretTemplate")
        unknown = sorted(str(key) for key in template if key not in ("metadata", "data"))
        if unknown:
            raise _Refused(
                f"spec.secretTemplate.{unknown[0][:64]} is not a field; use metadata and data"
            )
        metadata = _mapping(template.get("metadata") or {}, "spec.secretTemplate.metadata")
        labels, ignored_labels = _metadata(metadata, "labels", MAX_LABEL_VALUE)
        annotations, ignored_annotations = _metadata(metadata, "annotations", MAX_ANNOTATION_LENGTH)
        data = _data(template.get("data") or {}, kind)
    except _Refused as refused:
        return TemplateProblem(str(refused))
    return SecretTemplate(labels, annotations, data, (*ignored_labels, *ignored_annotations))


def _mapping(value: Any, field: str, most: int = MAX_ENTRIES) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Refused(f"{field} must be an object; see `kubectl explain googleclient.spec`")
    if len(value) > most:
        raise _Refused(f"{field} has {len(value)} entries; at most {most} are allowed")
    return value


def is_operators_own(key: str) -> bool:
    """A label or annotation key the operator sets or reads on its Secrets."""
    return key == MANAGED_BY_LABEL or key.startswith(f"{GROUP}/")


def _metadata(
    metadata: Mapping[str, Any], which: str, max_value: int
) -> tuple[dict[str, str], list[str]]:
    field = f"spec.secretTemplate.metadata.{which}"
    entries = _mapping(metadata.get(which) or {}, field)
    kept: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in entries.items():
        named = f"{field}[{str(key)[:64]!r}]"
        if not isinstance(key, str) or not _qualified_name(key):
            raise _Refused(
                f"{named} is not a valid key: use name or prefix/name (letters, digits, '-', "
                "'_', '.'; name at most 63 characters, prefix a DNS name)"
            )
        if not isinstance(value, str) or len(value) > max_value:
            raise _Refused(f"{named} must be a string of at most {max_value} characters")
        if which == "labels" and not LABEL_VALUE.fullmatch(value):
            raise _Refused(
                f"{named} is not a valid label value: letters, digits, '-', '_' and '.', "
                "beginning and ending with a letter or digit"
            )
        if "{{" in value:
            raise _Refused(
                f"{named}: placeholders are rendered only in spec.secretTemplate.data; "
                "labels and annotations are literal"
            )
        if is_operators_own(key):
            ignored.append(f"{which[:-1]} {key}")
        else:
            kept[key] = value
    return kept, ignored


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return (
        QUALIFIED_NAME.fullmatch(key) is not None
        and len(name) <= 63
        and len(prefix) <= MAX_SECRET_KEY
    )


def _data(raw: Any, kind: str) -> dict[str, str]:
    field = "spec.secretTemplate.data"
    entries = _mapping(raw, field, MAX_DATA_KEYS)
    names = BRANCH_PLACEHOLDERS if kind == "Branch" else CLIENT_PLACEHOLDERS
    pattern = re.compile(template_pattern(names))
    data: dict[str, str] = {}
    for key, value in entries.items():
        named = f"{field}[{str(key)[:64]!r}]"
        if not isinstance(key, str) or not is_secret_key(key):
            raise _Refused(
                f"{named} is not a valid Secret key: letters, digits, '-', '_' and '.', at "
                f"most {MAX_SECRET_KEY} characters, not '.' or '..' or beginning with '..'"
            )
        if key in STANDARD_KEYS:
            raise _Refused(
                f"{named} is a key the operator writes itself and cannot be overridden; "
                "choose another key name"
            )
        if not isinstance(value, str) or len(value) > MAX_TEMPLATE_LENGTH:
            raise _Refused(f"{named} must be a string of at most {MAX_TEMPLATE_LENGTH} characters")
        if not pattern.fullmatch(value):
            raise _Refused(f"{named}: {_placeholder_problem(value, names)}")
        data[key] = value
    return data


def is_secret_key(key: str) -> bool:
    return (
        len(key) <= MAX_SECRET_KEY
        and SECRET_KEY.fullmatch(key) is not None
        and key not in (".", "..")
        and not key.startswith("..")
    )


def _placeholder_problem(value: str, names: tuple[str, ...]) -> str:
    for match in _PLACEHOLDER.finditer(value):
        if match.group(1) not in names:
            return (
                f"unknown placeholder {{{{ {match.group(1)[:40]} }}}}; the placeholders are "
                f"{', '.join(names)}"
            )
    if len(_PLACEHOLDER.findall(value)) > MAX_PLACEHOLDERS:
        return f"at most {MAX_PLACEHOLDERS} placeholders in one value; split it into more keys"
    return (
        "'{{' must open a placeholder such as {{ access_token }}; the placeholders are "
        f"{', '.join(names)}"
    )


def template_values(standard: Mapping[str, str], account_email: str, kind: str) -> dict[str, str]:
    """What the placeholders of `kind` stand for: the consumer Secret's own standard keys
    (`standard`) and the consenting account. Nothing else can reach a template."""
    names = BRANCH_PLACEHOLDERS if kind == "Branch" else CLIENT_PLACEHOLDERS
    values = {**standard, "account_email": account_email}
    return {name: values.get(name, "") for name in names}


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with each placeholder replaced by its value (one pass: a value that itself
    looks like a placeholder stays as it is). The template was checked by parse_secret_template."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)
