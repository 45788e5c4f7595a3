"""YAML text -> plain Python values, with the line of every field path.

PyYAML's loader forgets where a value came from; the checks need it to say
``slo.yaml:12: slos[0].objective: ...``. The reader walks the composed nodes instead,
keeps numbers as written (``99.9`` stays ``Decimal("99.9")``) and refuses what a spec
never needs: duplicate keys and keys that are not strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import yaml

from ouro_obs.slo.spec.errors import FieldPath, SpecError, SpecIssue, format_path

__all__ = ["Document", "nearest_line", "read_documents"]


class Document(NamedTuple):
    """One YAML document: its value and the line of each field path in it."""

    value: Any
    lines: Mapping[FieldPath, int]
    #: Field paths to show instead of the model's (an imported OpenSLO file has its own).
    aliases: Mapping[FieldPath, str] | None = None


def nearest_line(lines: Mapping[FieldPath, int], path: FieldPath) -> int | None:
    """The line of ``path``, or of its closest enclosing field that has one."""
    for cut in range(len(path), -1, -1):
        found = lines.get(path[:cut])
        if found is not None:
            return found
    return None


class _YAMLProblem(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("int", "bool", "null", "str", "float")
)


class _Reader:
    """YAML nodes -> Python values, recording the line of every field path on the way."""

    def __init__(self) -> None:
        self.constructor = yaml.SafeLoader("")
        self.lines: dict[FieldPath, int] = {}

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:float":
            # Keep the digits as written: 99.9 stays Decimal("99.9"), not 99.90000000000001.
            try:
                return Decimal(node.value.replace("_", ""))
            except InvalidOperation:
                pass  # .inf, .nan: let the checks refuse the float
        if node.tag in _PLAIN_TAGS:
            return self.constructor.construct_object(node, deep=True)
        return node.value  # timestamps and the like stay text

    def value(self, node: yaml.Node, path: FieldPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise _YAMLProblem(
                    f"{format_path(path) or 'the document'}: keys must be strings, got {key!r}",
                    key_node.start_mark.line + 1,
                )
            if key in result:
                raise _YAMLProblem(
                    f"{format_path((*path, key))}: duplicate key; keep one of them",
                    key_node.start_mark.line + 1,
                )
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, (*path, key))
        return result


def _compose(text: str, source: str) -> list[yaml.Node]:
    try:
        return [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node is not None]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        problem = error.problem or error.context or "unreadable YAML"
        message = f"invalid YAML: {problem}; fix the syntax there"
        raise SpecError(source, [SpecIssue("", message, line)]) from None
    except yaml.YAMLError as error:
        raise SpecError(source, [SpecIssue("", f"invalid YAML: {error}")]) from None


def read_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document of ``text``; :class:`SpecError` for unreadable YAML."""
    documents = []
    for node in _compose(text, source):
        reader = _Reader()
        try:
            documents.append(Document(reader.value(node, ()), reader.lines))
        except _YAMLProblem as problem:
            raise SpecError(source, [SpecIssue("", problem.message, problem.line)]) from None
    return documents
