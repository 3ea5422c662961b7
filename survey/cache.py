"""One bounded, thread-safe cache for what a worker remembers between requests."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class BoundedCache(Generic[K, V]):
    """A mapping that keeps at most `maxsize` entries, dropping the least recently used."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """Return the value for key (marking it as just used), or default."""
        with self._lock:
            try:
                self._data.move_to_end(key)
            except KeyError:
                return default
            return self._data[key]

    def put(self, key: K, value: V) -> V:
        """Store value under key as the most recently used entry; return value."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    @overload
    def pop(self, key: K) -> V | None: ...

    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key: K, default: object = None) -> object:
        """Remove key and return its value, or default."""
        with self._lock:
            return self._data.pop(key, default)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        # Under the lock: a put() in another thread holds one entry over the bound for a moment.
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Whether key is cached (without marking it as used)."""
        with self._lock:
            return key in self._data
