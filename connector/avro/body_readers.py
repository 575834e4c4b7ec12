"""Avro body readers: one per (writer, reader) schema pair, chosen once when the decoder plans that pair.

A `BodyReader` turns the Avro body of a value (`value[offset:]`) into the record dict, or raises the
connector's `DecodeError` (reasons `incompatible_schema`, `truncated_body`, `corrupt_body`; see README,
"Dead-letter reasons"). Two implementations:

- `FastavroReader`: fastavro's `schemaless_reader`. The reference: its records and its errors are what the
  connector's contract says.
- `CavroReader`: cavro (Cython, the optional extra `rd-connector[fast]`), about twice as fast on our records.
  It is only built for a pair cavro compiles (`make_body_reader` falls back to `FastavroReader` for a pair
  it cannot: decided once per pair, never per record). On any failure, and when bytes are left after the
  record (cavro does not check that itself), the value is read again by the pair's `FastavroReader`, whose
  answer (a record or a `DecodeError`) is the result: a bad record gets exactly fastavro's reason and
  message, and costs one more read on the dead-letter path only. On good values the two agree record for
  record, types included (tests/unit/avro/test_body_readers_differential.py).

`RDC_AVRO_DECODER` picks the backend: `fastavro` (the default), `cavro` (a `ConfigError` when it is not
installed), or `auto` (cavro when importable). Logical-type decoding (`logical_types=True`, used by tools,
never by the pipeline) always reads with fastavro: cavro's Decimal/datetime values are not fastavro's.
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any, Final, Protocol

from fastavro import schemaless_reader
from fastavro.read import SchemaResolutionError

from connector.avro.catalog import strip_logical_types
from connector.errors import ConfigError, DecodeError

__all__ = [
    "BACKENDS",
    "BodyReader",
    "CavroReader",
    "FastavroReader",
    "cavro_installed",
    "make_body_reader",
    "resolve_backend",
]

#: The values of `RDC_AVRO_DECODER`.
BACKENDS: Final = ("fastavro", "cavro", "auto")


class BodyReader(Protocol):
    """Reads the Avro body of one value. Built once per schema pair; `read` is thread-safe."""

    #: `fastavro` or `cavro`: which library reads this pair (for logs and tests).
    backend: str

    def read(self, value: bytes, offset: int) -> dict[str, Any]:
        """The record whose body is `value[offset:]`, all of it; raises `DecodeError` (never anything else)."""
        ...


class FastavroReader:
    """fastavro's `schemaless_reader` over parsed schemas (`reader` None: no resolution)."""

    backend = "fastavro"

    def __init__(self, full_name: str, writer: dict[str, Any], reader: dict[str, Any] | None) -> None:
        self._full_name, self._writer, self._reader = full_name, writer, reader

    def read(self, value: bytes, offset: int) -> dict[str, Any]:
        name = self._full_name
        stream = io.BytesIO(value)
        stream.seek(offset)
        try:
            record: Any = schemaless_reader(stream, self._writer, self._reader)
        except SchemaResolutionError as exc:
            raise DecodeError("incompatible_schema", f"{name}: writer and reader differ: {exc}") from exc
        except (EOFError, IndexError) as exc:
            raise DecodeError("truncated_body", f"{name}: body ends early ({len(value)} bytes)") from exc
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError(
                "corrupt_body",
                f"{name}: body does not decode: {exc!r}"[:300],
                f"{name}: body does not decode: {type(exc).__name__}",  # its text may quote the data
            ) from exc
        left = len(value) - stream.tell()
        if left:
            raise DecodeError("corrupt_body", f"{name}: {left} bytes left after the record")
        return record  # type: ignore[no-any-return]


class CavroReader:
    """cavro's reader for one pair (built by `make_body_reader`), with `fallback` for values it does not
    read cleanly (the reason and message of a bad value are fastavro's)."""

    backend = "cavro"

    def __init__(self, compiled: Any, end_probe: Any, fallback: FastavroReader) -> None:
        self._compiled, self._end_probe, self._fallback = compiled, end_probe, fallback
        self._memory_reader: Any = _cavro().MemoryReader

    def read(self, value: bytes, offset: int) -> dict[str, Any]:
        try:
            source = self._memory_reader(memoryview(value)[offset:])
            record: dict[str, Any] = self._compiled.binary_read(source)
        except Exception:  # cavro's error types are not fastavro's: let fastavro say what is wrong
            return self._fallback.read(value, offset)
        try:
            self._end_probe.binary_read(source)  # one more byte: EOFError when the record used them all
        except EOFError:
            return record
        return self._fallback.read(value, offset)  # bytes left: fastavro names how many


def cavro_installed() -> bool:
    """Whether the optional cavro package can be imported (`pip install 'rd-connector[fast]'`)."""
    return importlib.util.find_spec("cavro") is not None


def resolve_backend(setting: str) -> str:
    """`fastavro` or `cavro` for a `RDC_AVRO_DECODER` value (`auto`: cavro when installed). `ConfigError` for
    `cavro` when it is not installed, and for a value not in `BACKENDS`."""
    if setting not in BACKENDS:
        raise ConfigError(f"avro decoder {setting!r} is invalid: expected one of {', '.join(BACKENDS)}")
    if setting == "auto":
        return "cavro" if cavro_installed() else "fastavro"
    if setting == "cavro" and not cavro_installed():
        raise ConfigError("RDC_AVRO_DECODER=cavro but cavro is not installed: pip install 'rd-connector[fast]'")
    return setting


def make_body_reader(
    backend: str,
    full_name: str,
    writer: tuple[dict[str, Any], Any],
    reader: tuple[dict[str, Any], Any] | None,
) -> BodyReader:
    """The reader of a pair: `writer` and `reader` are each (fastavro's parsed raw schema, the schema JSON);
    `reader` None when the writer is the reader. `backend` `cavro` gives a `CavroReader` when cavro compiles
    the pair, else (or with `fastavro`) a `FastavroReader`."""
    fallback = FastavroReader(full_name, writer[0], reader[0] if reader else None)
    if backend != "cavro":
        return fallback
    if reader is not None and (
        not defaults_read_alike(strip_logical_types(reader[1]))
        or promotes_string_to_bytes(strip_logical_types(writer[1]), strip_logical_types(reader[1]))
    ):
        return fallback
    try:
        compiled = _compile(writer[1], reader[1] if reader else None)
    except Exception:  # a schema or a pair cavro does not take: fastavro reads it, as with the default
        return fallback
    return CavroReader(compiled, _end_probe(), fallback)


def defaults_read_alike(reader: Any) -> bool:
    """Whether every field default of the schema JSON `reader` comes out of cavro as out of fastavro.

    fastavro returns a missing field's default as the JSON value itself; cavro decodes it: a `bytes` or
    `fixed` default is str in one and bytes in the other, and a record default that leaves out a field with
    a default of its own gets it filled in by cavro only. So a reader with such a default is read by
    fastavro (defaults are only used when the reader differs from the writer)."""
    names: dict[str, Any] = {}
    fields: list[tuple[Any, Any, str | None]] = []
    _collect(reader, None, names, fields)
    return all(_plain(kind, default, space, names) for kind, default, space in fields)


def promotes_string_to_bytes(writer: Any, reader: Any) -> bool:
    """Whether reading schema JSON `writer` as `reader` may turn a written `string` into `bytes` (conservatively:
    any union branch against any). fastavro decodes that string as UTF-8 first and refuses a value that is not
    (`corrupt_body`); cavro copies its bytes (found by the differential test). Such a pair is read by fastavro."""
    names: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    _collect(writer, None, names[0], [])
    _collect(reader, None, names[1], [])
    seen: set[tuple[int, int]] = set()

    def walk(w: Any, w_space: str | None, r: Any, r_space: str | None) -> bool:
        (w, w_space), (r, r_space) = _deref(w, w_space, names[0]), _deref(r, r_space, names[1])
        if (id(w), id(r)) in seen:
            return False
        seen.add((id(w), id(r)))
        if isinstance(w, list) or isinstance(r, list):
            w_branches, r_branches = w if isinstance(w, list) else [w], r if isinstance(r, list) else [r]
            return any(walk(a, w_space, b, r_space) for a in w_branches for b in r_branches)
        w_kind, r_kind = _kind(w), _kind(r)
        if (w_kind, r_kind) == ("string", "bytes"):
            return True
        if w_kind != r_kind or not isinstance(w, dict) or not isinstance(r, dict):
            return False
        if w_kind in ("array", "map"):
            part = "items" if w_kind == "array" else "values"
            return walk(w[part], w_space, r[part], r_space)
        if w_kind in ("record", "error"):
            w_inner = _qualify(str(w["name"]), w.get("namespace", w_space)).rpartition(".")[0] or None
            r_inner = _qualify(str(r["name"]), r.get("namespace", r_space)).rpartition(".")[0] or None
            written = {f["name"]: f["type"] for f in w["fields"]}
            for field in r["fields"]:
                for name in (field["name"], *field.get("aliases", ())):
                    if name in written and walk(written[name], w_inner, field["type"], r_inner):
                        return True
        return False

    return walk(writer, None, reader, None)


def _deref(node: Any, space: str | None, names: dict[str, Any]) -> tuple[Any, str | None]:
    """`node` with a named-type reference replaced by its definition, and the namespace it is in."""
    while isinstance(node, dict) and isinstance(node.get("type"), dict | list):
        node = node["type"]
    if isinstance(node, str) and node not in _PLAIN and node != "bytes":
        found = names.get(_qualify(node, space)) or names.get(node)
        if found is not None:
            return found[0], found[1]
    return node, space


def _kind(node: Any) -> Any:
    return node if isinstance(node, str) else node.get("type")


def _collect(node: Any, space: str | None, names: dict[str, Any], fields: list[tuple[Any, Any, str | None]]) -> None:
    """Fill `names` (full name -> (definition, its namespace)) and `fields` ((type, default, namespace) of every
    field with a default) from the schema JSON `node`."""
    if isinstance(node, list):
        for branch in node:
            _collect(branch, space, names, fields)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        full = _qualify(str(node["name"]), node.get("namespace", space))
        space = full.rpartition(".")[0] or None
        names[full] = (node, space)
    if kind in ("record", "error"):
        for field in node["fields"]:
            if "default" in field:
                fields.append((field["type"], field["default"], space))
            _collect(field["type"], space, names, fields)
    elif kind == "array":
        _collect(node["items"], space, names, fields)
    elif kind == "map":
        _collect(node["values"], space, names, fields)
    elif isinstance(kind, dict | list):
        _collect(kind, space, names, fields)


def _qualify(name: str, space: str | None) -> str:
    return name if "." in name or not space else f"{space}.{name}"


_PLAIN: Final[dict[str, Any]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
}


def _plain(kind: Any, value: Any, space: str | None, names: dict[str, Any]) -> bool:
    """Whether the JSON default `value` of type `kind` is what both libraries return (see `defaults_read_alike`)."""
    if isinstance(kind, list):  # a union's default is of its first branch
        return bool(kind) and _plain(kind[0], value, space, names)
    if isinstance(kind, str):
        if kind in _PLAIN:
            return bool(_PLAIN[kind](value))
        named = names.get(_qualify(kind, space)) or names.get(kind)
        return named is not None and _plain(named[0], value, named[1], names)
    node = kind
    kind = node.get("type")
    if kind == "enum":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list) and all(_plain(node["items"], v, space, names) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(_plain(node["values"], v, space, names) for v in value.values())
    if kind in ("record", "error"):
        inner = _qualify(str(node["name"]), node.get("namespace", space)).rpartition(".")[0] or None
        given = isinstance(value, dict) and set(value) == {f["name"] for f in node["fields"]}
        return given and all(_plain(f["type"], value[f["name"]], inner, names) for f in node["fields"])
    if kind in _PLAIN or isinstance(kind, dict | list):  # {"type": "long", ...}, {"type": [...]}
        return _plain(kind, value, space, names)
    return False  # bytes, fixed: str in fastavro, bytes in cavro


def _cavro() -> Any:
    import cavro  # optional: imported only when chosen

    return cavro


def _options() -> Any:
    cavro = _cavro()
    # Records as dicts, no logical types (values raw, as fastavro's raw reading gives), union values as they
    # are (no (type, value) tuples), and strings that are not UTF-8 rejected (as fastavro does).
    return cavro.DEFAULT_OPTIONS.replace(
        record_decodes_to_dict=True,
        logical_types=(),
        union_decodes_to=cavro.UnionDecodeOption.RAW_VALUES,
        unicode_errors="strict",
    )


def _compile(writer: Any, reader: Any | None) -> Any:
    cavro, options = _cavro(), _options()
    writer_schema = cavro.Schema(_ints_as_longs(strip_logical_types(writer)), options=options, parse_json=False)
    if reader is None:
        return writer_schema
    reader_schema = cavro.Schema(_ints_as_longs(strip_logical_types(reader)), options=options, parse_json=False)
    return reader_schema.reader_for_writer(writer_schema)


def _ints_as_longs(node: Any) -> Any:
    """The schema JSON `node` with every `int` read as a `long` (the same varint on the wire). A corrupt body
    can hold an `int` varint beyond 32 bits: fastavro returns its whole value, cavro's `int` keeps the low
    32 bits (found by the differential test); as a `long`, cavro returns what fastavro does."""
    if node == "int":
        return "long"
    if isinstance(node, list):
        return [_ints_as_longs(n) for n in node]
    if isinstance(node, dict):
        return {k: _ints_as_longs(v) if k in ("type", "items", "values", "fields") else v for k, v in node.items()}
    return node


def _end_probe() -> Any:
    return _cavro().Schema({"type": "fixed", "name": "rdc_end_probe", "size": 1}, options=_options())
