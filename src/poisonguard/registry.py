"""A name -> class registry, shared by detectors and attacks: adding one is a file plus a decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, type[T]], Generic[T]):
    """A dict of registered classes that refuses duplicates and builds instances with clear errors."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self:
                raise ConfigError(f"a {self.kind} named '{name}' is already registered ({self[name].__name__}).")
            cls.name = name  # type: ignore[attr-defined]
            self[name] = cls
            return cls

        return deco

    def create(self, name: str, **params: Any) -> T:
        if name not in self:
            raise ConfigError(f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(sorted(self))}.")
        try:
            return self[name](**params)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} '{name}': bad parameters {sorted(params)} ({exc}).") from exc
