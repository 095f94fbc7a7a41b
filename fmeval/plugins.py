"""Extensions from outside fmeval: `module:attribute` specs, and packages that declare an entry
point in the `fmeval` group.

A plugin package names a module in its metadata (pyproject.toml):

    [project.entry-points.fmeval]
    my_plugin = "my_plugin"

and registers its evaluations, metrics and runners there with fmeval's decorators; fmeval imports
every such module the first time it meets a name that it does not know, in any process (the CLI,
a Ray worker), so nothing is imported by hand.
"""
from __future__ import annotations

import importlib
import logging
import re
from typing import Any

from fmeval.errors import UserError

ENTRY_POINT_GROUP = "fmeval"
_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_loaded = False
logger = logging.getLogger(__name__)


def load_plugins() -> None:
    """Import the modules of every installed `fmeval` entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib.metadata  # only where a name is unknown: it costs start-up time
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:
            raise UserError(f"the fmeval plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                            f"{type(exc).__name__}: {exc}") from exc
        logger.debug("loaded fmeval plugin %s (%s)", entry_point.name, entry_point.value)


def is_module_spec(spec: str) -> bool:
    """Whether `spec` reads `package.module:attribute`."""
    return bool(_MODULE_SPEC.match(spec))


def import_spec(spec: str, *, what: str) -> Any:
    """The object `package.module:attribute` names; a clear error saying what failed otherwise."""
    module_name, _, attribute = spec.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"{what} {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise UserError(f"{what} {spec!r}: module {module_name!r} has no {attribute!r}") from None
    return value
