"""A registry is a plain dict filled by a decorator that refuses duplicates."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object in the public dict ``items`` (tests patch it with ``monkeypatch.setitem``). ``register`` refuses a
    second entry under one name; ``get`` lists valid names on a miss."""

    def __init__(self, kind: str):
        self.kind = kind
        self.items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self.items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self.items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self.items[name]
        except KeyError:
            valid = ", ".join(sorted(self.items)) or "(none)"
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.items))

    def names(self) -> list[str]:
        return sorted(self.items)
