"""One registry kind for everything chosen by name in the config (after timm's `_registry.py`).

Models, losses, readers, layouts, clip samplers, batch samplers, tasks and figures are each a
`Registry`. An entry's name comes from what is registered (the function or class name, or the
class's `name` attribute), its metadata is kept beside it, and an unknown name raises one
`ConfigError` that lists the choices.
"""

from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

from cineflow.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what the entries are, for messages ("model architecture", "loss", ...).
        key: the config key that names an entry, for messages ("models.<name>.arch").
    """

    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, obj: T | None = None, *, name: str | None = None, **meta) -> Any:
        """Register `obj` under `name` (default: its `name` attribute, else its `__name__`) with `meta`.

        Used bare (`@reg.register`), with arguments (`@reg.register(name="x", task="y")`) or called
        (`reg.register(fn, name="x")`); returns the object unchanged."""

        def add(entry: T) -> T:
            key = name or getattr(entry, "name", None) or entry.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._entries[key], self._meta[key] = entry, dict(meta)
            return entry

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"{self.key}: unknown {self.kind} '{name}'; choose one of {self.names()}")
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self, **where) -> list[str]:
        """Registered names (sorted), optionally only those whose metadata matches `where`."""
        return sorted(n for n in self._entries if all(self._meta[n].get(k) == v for k, v in where.items()))

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

