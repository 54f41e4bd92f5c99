"""The files `serve` reads at run time, found as package data wherever the package is installed.

Envoy and peewee's migration runner open them by path, so each is a file on disk: the
package must be installed as files (a wheel, an editable install), not run from a zip.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path


def on_disk(resource: Traversable) -> Path:
    """A resource's path on disk."""
    if not isinstance(resource, Path):
        raise RuntimeError(f"{resource} is not a file on disk: install the package unzipped")
    return resource


# Generated from protos/ (scripts/protos.py): the descriptor set Envoy's transcoder and
# server reflection load, and the REST API's OpenAPI description.
DESCRIPTOR_SET = on_disk(files("conversations.v4") / "conversation_service.binpb")
OPENAPI = on_disk(files("conversations.v4") / "openapi.json")
# Envoy's configuration template and the API explorer's page and script.
ENVOY_TEMPLATE = on_disk(files("server.rest") / "envoy.yaml.template")
DOCS_PAGE = on_disk(files("server.rest") / "docs.html")
DOCS_SCRIPT = on_disk(files("server.rest") / "docs.js")
# The schema migrations peewee's runner applies.
MIGRATIONS = on_disk(files("server.storage.migrations"))
