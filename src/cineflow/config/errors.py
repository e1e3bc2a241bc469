"""The config's error: a value that cannot work, with the key and the fix."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""
