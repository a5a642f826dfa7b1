"""`google-token-operator version` (and `--version`): this command's version, the API
version it speaks and what it was built with."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from typing import Any

import yaml

from .. import GROUP, VERSION


def facts() -> dict[str, Any]:
    return {
        "version": importlib.metadata.version("google-token-operator"),
        "apiVersion": f"{GROUP}/{VERSION}",
        "build": {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "kopf": importlib.metadata.version("kopf"),
            "aiohttp": importlib.metadata.version("aiohttp"),
            "platform": f"{sys.platform}/{platform.machine()}",
        },
    }


def version_text() -> str:
    found = facts()
    build = found["build"]
    return (
        f"google-token-operator {found['version']}\n"
        f"API version: {found['apiVersion']}\n"
        f"build: {build['python']}, kopf {build['kopf']}, aiohttp {build['aiohttp']}, "
        f"{build['platform']}"
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = "Print the version, the API version (group/version) and the build."
    parser.add_argument(
        "-o", "--output", choices=("text", "json", "yaml"), default="text", help="text, json, yaml"
    )


def run(args: argparse.Namespace) -> int:
    if args.output == "json":
        print(json.dumps(facts(), indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(facts(), sort_keys=False), end="")
    else:
        print(version_text())
    return 0
