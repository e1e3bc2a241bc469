"""One way to build the registries (models, layouts, samplers, readers, losses): a name -> function table."""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def registrar(table: dict[str, F]) -> Callable[[str], Callable[[F], F]]:
    """`@register(name)` for `table`: the decorated function is stored under `name` and returned unchanged."""

    def register(name: str) -> Callable[[F], F]:
        def wrap(fn: F) -> F:
            table[name] = fn
            return fn

        return wrap

    return register
