"""`Secret`: a setting's value that never shows itself (tokens, client secrets, passwords)."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A value that never shows itself in a repr, a str or a log line. `reveal()` is explicit."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
