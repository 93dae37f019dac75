"""Typed name -> builder registries (architectures here, methods in :mod:`ganslim.methods`). Unknown names fail
listing the valid ones."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ganslim.errors import GanslimError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builder callables, e.g. ``GENERATORS.register("resnet_9blocks")``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._builders:
            raise GanslimError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}")
        return self._builders[name]

    def build(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def entries(self) -> list[T]:
        """What is registered, in the order it was registered."""
        return list(self._builders.values())

    def where(self, kind: str, keep: Callable[[T], bool]) -> Registry[T]:
        """The entries ``keep`` accepts, as a registry whose messages call them ``kind``."""
        subset: Registry[T] = Registry(kind)
        subset._builders = {name: entry for name, entry in self._builders.items() if keep(entry)}
        return subset

    def __contains__(self, name: object) -> bool:
        return name in self._builders


GENERATORS: Registry = Registry("generator")
DISCRIMINATORS: Registry = Registry("discriminator")
