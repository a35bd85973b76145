"""YAML that remembers where things are, so errors can name file, line and field.

Mappings load as ``Node`` (a dict) with ``.line`` (1-based) and ``.key_lines`` (key -> line);
sequences load as ``NodeList`` with ``.line`` and ``.item_lines``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

import yaml

from .errors import ScenarioError


def yaml_kind(t: type) -> str:
    """What a YAML writer calls a Python type: mapping, list, string, number, true/false."""
    for base, name in ((bool, "true/false"), (dict, "mapping"), (list, "list"),
                       (str, "string"), (int, "number"), (float, "number")):
        if issubclass(t, base):
            return name
    return t.__name__


def plain(value: Any) -> Any:
    """``value`` without our line-tracking types, for messages."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Node(dict):
    line: int = 0
    key_lines: Dict[str, int]
    key_text: Dict[Any, str]     # each key as the file wrote it (0x5e551, not 386385)
    path: Optional[Path] = None


class NodeList(list):
    line: int = 0
    item_lines: List[int]


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    result = Node()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.key_text = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        written = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
        if key in result:   # named as written: 0x5e551, not 386385
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{written}'", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        result.key_text[key] = written
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> NodeList:
    result = NodeList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(path: Union[str, Path], error: Type[Exception] = ScenarioError) -> Any:
    """Load one YAML document; a syntax error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise error(path, None, None, f"cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise error(path, line, None, f"invalid YAML: {e.problem or e}") from None
    if isinstance(data, Node):
        data.path = path
    return data


class Fields:
    """Typed access to a mapping's fields, with errors naming file, line and field."""

    def __init__(self, node: Node, path: Path, where: str = "",
                 error: Type[Exception] = ScenarioError):
        if not isinstance(node, dict):
            raise error(path, getattr(node, "line", None), where or None, "expected a mapping")
        self.node, self.path, self.where, self.error = node, path, where, error

    def _name(self, key: str) -> str:
        key = getattr(self.node, "key_text", {}).get(key, key)
        return f"{self.where}.{key}" if self.where else str(key)

    def line(self, key: Optional[str] = None) -> Optional[int]:
        if key is not None and key in getattr(self.node, "key_lines", {}):
            return self.node.key_lines[key]
        return getattr(self.node, "line", None)

    def fail(self, key: Optional[str], message: str):
        raise self.error(self.path, self.line(key), self._name(key) if key else self.where or None,
                         message)

    def only(self, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for key in self.node:
            if key not in allowed:
                self.fail(key, f"unknown field; expected one of: {', '.join(allowed)}")

    def get(self, key: str, types: Union[type, Tuple[type, ...]], default: Any = ...,
            required: bool = False) -> Any:
        if key not in self.node:
            if required or default is ...:
                self.fail(None, f"missing required field '{self._name(key)}'")
            return default
        value = self.node[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            names = " or ".join(yaml_kind(t) for t in _tuple(types))
            self.fail(key, f"expected {names}, got {yaml_kind(type(value))} {plain(value)!r}")
        return value

    def sub(self, key: str, default: Any = ...) -> "Fields":
        value = self.get(key, dict, default)
        return Fields(value if value is not None else Node(), self.path, self._name(key), self.error)

    def strings(self, key: str, default: Any = ...) -> Optional[List[str]]:
        value = self.get(key, list, default)
        for i, item in enumerate(value or []):
            if not isinstance(item, str):
                lines = getattr(value, "item_lines", [])
                raise self.error(self.path, lines[i] if i < len(lines) else self.line(key),
                                 f"{self._name(key)}[{i}]", f"expected a string, got {item!r}")
        return None if value is None else list(value)   # default None: absent


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)
