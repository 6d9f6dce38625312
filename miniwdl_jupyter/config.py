"""Configuration through miniwdl's own loader: cfg file + MINIWDL__SECTION__KEY + our defaults.

Our sections (`[jupyter]`, and each backend's) live in ``defaults.cfg`` beside this module and are
merged under miniwdl's defaults, so `%wdl config` and `miniwdl run` see one configuration.
"""

from __future__ import annotations

import configparser
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from WDL.runtime.config import ConfigMissing, Loader, _env_var_name

_DEFAULTS_FILE = Path(__file__).with_name("defaults.cfg")
_logger = logging.getLogger("miniwdl_jupyter.config")


@functools.lru_cache(maxsize=1)
def _parsed_defaults() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(_DEFAULTS_FILE)
    return parser


def project_defaults() -> Dict[str, Dict[str, str]]:
    parser = _parsed_defaults()
    return {section: dict(parser[section]) for section in parser.sections()}


@functools.lru_cache(maxsize=1)
def _defaults_loader() -> Loader:
    """A Loader holding only defaults.cfg's values (as overrides), to parse them exactly as miniwdl
    parses a cfg file's: same JSON lists, booleans and ${VAR} expansion."""
    return Loader(logging.getLogger("miniwdl_jupyter.config.defaults"), [], project_defaults())


_GETTERS = {"str": "get", "bool": "get_bool", "int": "get_int", "float": "get_float", "list": "get_list", "dict": "get_dict"}


def option(cfg: Loader, section: str, key: str, kind: str = "str") -> Any:
    """`[section] key` from ANY miniwdl Loader (miniwdl makes its own, which know nothing of our
    sections), falling back to defaults.cfg, the one place our defaults are written.
    `kind`: str | bool | int | float | list | dict. A key missing from defaults.cfg is a bug: KeyError."""
    getter = _GETTERS[kind]
    try:
        return getattr(cfg, getter)(section, key)
    except ConfigMissing:
        if not _parsed_defaults().has_option(section, key):
            raise KeyError(f"[{section}] {key} has no default in {_DEFAULTS_FILE.name}") from None
        return getattr(_defaults_loader(), getter)(section, key)


def apply_defaults(cfg: Loader) -> Loader:
    """Add our sections' defaults to a Loader of our own making, so `%wdl config` lists them. Code
    that may be handed someone else's Loader (the backends) reads through `option()` instead."""
    missing: Dict[str, Dict[str, str]] = {}
    for section, options in project_defaults().items():
        for key, value in options.items():
            if not cfg._defaults.has_option(section, key):  # idempotent: don't warn on a 2nd call
                missing.setdefault(section, {})[key] = value
    if missing:
        cfg.plugin_defaults(missing)
    return cfg


def load(cfg_file: Optional[os.PathLike | str] = None, overrides: Optional[Dict[str, Dict[str, Any]]] = None) -> Loader:
    """The effective configuration: overrides > environment > cfg file > our defaults > miniwdl's."""
    filenames = [str(cfg_file)] if cfg_file else None
    if cfg_file and not Path(cfg_file).is_file():
        from .errors import ConfigError

        raise ConfigError(f"configuration file not found: {cfg_file}")
    try:
        cfg = Loader(_logger, filenames, overrides)
    except configparser.Error as exn:
        from .errors import ConfigError

        raise ConfigError(_describe_parse_error(exn, cfg_file)) from None
    except UnicodeDecodeError as exn:
        from .errors import ConfigError

        raise ConfigError(f"configuration file {cfg_file or os.environ.get('MINIWDL_CFG', '')} is not UTF-8 text (byte {exn.start})") from None
    return apply_defaults(cfg)


def _describe_parse_error(exn: configparser.Error, cfg_file: Optional[os.PathLike | str]) -> str:
    """configparser's multi-line report (passed through by miniwdl's loader) as one line."""
    name = getattr(exn, "source", None) or cfg_file or "the configuration file"
    line = getattr(exn, "lineno", None)
    if isinstance(exn, configparser.MissingSectionHeaderError):
        problem = "text before the first [section] header"
    elif isinstance(exn, configparser.ParsingError) and exn.errors:
        line, text = exn.errors[0][0], exn.errors[0][1]
        problem = f"cannot read {text}"  # configparser gives the line as a repr
    else:
        problem = re.sub(r"^While reading from .*?\]: ", "", exn.message.splitlines()[0])
    where = f"{name}, line {line}" if line else str(name)
    return f"{where}: not a valid miniwdl configuration file ([section] headers, then key = value lines): {problem}"


def origin(cfg: Loader, section: str, key: str) -> str:
    """Where a value came from: override, environment variable, cfg file, or a defaults file."""
    section, key = section.lower(), key.lower()
    if cfg._overrides.has_option(section, key):
        return "override"
    env_key = _env_var_name(section, key)
    if env_key in os.environ:
        return f"env {env_key}"
    if cfg._options.has_option(section, key):
        return f"file {cfg.cfg_filename}"
    if key in project_defaults().get(section, {}):
        return "miniwdl-jupyter default"
    return "miniwdl default"


def describe(cfg: Loader, sections: Optional[List[str]] = None) -> List[Tuple[str, str, str, str]]:
    """(section, key, value, origin) for every effective option, optionally of some sections."""
    rows = []
    for section, options in sorted(cfg.get_all().items()):
        if sections and section not in sections:
            continue
        for key, value in sorted(options.items()):
            rows.append((section, key, value, origin(cfg, section, key)))
    return rows
