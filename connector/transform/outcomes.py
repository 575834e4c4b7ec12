"""What the transform says of one record: exactly one of four small NamedTuples (cheap to pickle).

The pipeline tells them apart by type (`type(outcome) is Ready`: one pointer comparison per record, cheaper
than `isinstance`). Measured against the int-tagged tuples they replace, a NamedTuple costs ~0.45 us more to
build and ~1.6 us more to pickle and unpickle across the decode worker's pipe (per record, this machine).

Each pickles as `tuple.__new__(cls, fields)` (`__reduce__`): unpickling then runs no Python code (the
default, NEWOBJ, calls the NamedTuple's Python `__new__`), and pickling calls one Python method instead of
two. Measured per `Ready` (1,000 in a list, protocol 5): pickled 0.65-0.70 -> 0.54-0.56 us (the decode
worker), unpickled 0.27 -> 0.19 us (the pipeline process).
"""

from __future__ import annotations

from typing import Any, NamedTuple

_new_tuple = tuple.__new__  # builds a tuple subclass from one tuple of its fields, in C

__all__ = ["Outcome", "Ready", "Refused", "RegistryDown", "SkippedByMapping"]


class Ready(NamedTuple):
    """Mapped and encoded: `data` is the RD event's JSON, `trims` how many values were cut to fit RD,
    `account` the RD account it goes to (None: the only, or the `default` one)."""

    event_type: str
    event_id: Any
    data: bytes
    trims: int
    account: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return _new_tuple, (Ready, tuple(self))


class Refused(NamedTuple):
    """A `DecodeError` or `MappingError` (or any exception while decoding, mapping or encoding the record):
    dead-lettered. `log_message` is `message` without the record's values."""

    stage: str
    reason: str
    message: str
    log_message: str

    def __reduce__(self) -> tuple[Any, ...]:
        return _new_tuple, (Refused, tuple(self))


class RegistryDown(NamedTuple):
    """The Schema Registry could not be reached: the record is fine, its partition is held and retried."""

    message: str

    def __reduce__(self) -> tuple[Any, ...]:
        return _new_tuple, (RegistryDown, tuple(self))


class SkippedByMapping(NamedTuple):
    """The record's mapping skips it (committed, nothing sent, counted per mapping)."""

    mapping: str

    def __reduce__(self) -> tuple[Any, ...]:
        return _new_tuple, (SkippedByMapping, tuple(self))


Outcome = Ready | Refused | RegistryDown | SkippedByMapping
