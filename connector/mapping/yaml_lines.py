"""YAML -> plain Python values that remember their line numbers (for error messages that name a line). Pure.

Mappings become `LineDict` (a dict with `line`, the line of its first key, and `lines`, each key's line) and
sequences `LineList` (`line`, and `lines`, each item's line); scalars are what PyYAML's safe loader makes of
them (str, int, float, bool, None, datetime, date). Unlike PyYAML, a key given twice in one mapping is an
error: in a mapping file it is always a mistake (the second `event_type:` silently replaced the first).
"""

from __future__ import annotations

from typing import Any

import yaml

from connector.errors import ConfigError

__all__ = ["LineDict", "LineList", "YamlError", "load_yaml"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(ConfigError):
    """The text is not YAML, or has a key twice. `line` is 1-based (0: unknown)."""

    def __init__(self, label: str, line: int, message: str) -> None:
        super().__init__(f"{label}:{line}: {message}" if line else f"{label}: {message}")
        self.label, self.line, self.message = label, line, message


class LineDict(dict[Any, Any]):
    """A YAML mapping: `line` is where it starts, `lines[key]` where each key is."""

    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line) if hasattr(self, "lines") else self.line


class LineList(list[Any]):
    """A YAML sequence: `line` is where it starts, `lines[i]` where item i is."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if hasattr(self, "lines") and index < len(self.lines) else self.line


def load_yaml(text: str, label: str) -> Any:
    """The one YAML document of `text` (None when empty). Raises `YamlError` naming `label` and the line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _build(loader, node, label)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(label, mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(label, 0, f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, label: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        out = LineDict()
        out.line, out.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = _build(loader, key_node, label)
            line = key_node.start_mark.line + 1
            if isinstance(key, dict | list):
                raise YamlError(label, line, "a mapping key must be a plain value")
            if key in out:
                raise YamlError(label, line, f"key {key!r} is given twice (first on line {out.lines[key]})")
            out[key] = _build(loader, value_node, label)
            out.lines[key] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        items = LineList(_build(loader, item, label) for item in node.value)
        items.line, items.lines = node.start_mark.line + 1, [item.start_mark.line + 1 for item in node.value]
        return items
    return loader.construct_object(node, deep=True)
