"""HTML pages from package templates, shared by the callback and the sandbox."""

from __future__ import annotations

import functools
import html
import importlib.resources
import string


@functools.cache
def template(package: str, name: str) -> string.Template:
    """`templates/<name>` of `package`, read once."""
    source = importlib.resources.files(package).joinpath("templates", name)
    return string.Template(source.read_text(encoding="utf-8"))


def escaped(value: str) -> str:
    """Text safe inside HTML content and attribute values."""
    return html.escape(value, quote=True)
