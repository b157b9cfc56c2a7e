"""YAML from files the proxy did not write (config and policy files): ``yaml.safe_load`` that
fails with one ``key.path: reason`` line instead of a traceback, a hang or a stack overflow, and
that refuses a duplicate mapping key instead of keeping the last one."""

from __future__ import annotations

from typing import Any

import yaml

from proxy.errors import shown

__all__ = ["YamlError", "parse_yaml"]

_MAX_DEPTH = 100  # nesting levels a file may use (aliases expanded)
_MAX_ALIAS_NODES = 100_000  # nodes that aliases may add when expanded ("billion laughs")


class YamlError(ValueError):
    """YAML text that cannot be used; ``problem`` is one ``key.path: reason`` line."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that reports a value it cannot build (``2026-13-45``, a 5000-digit
    integer) as a YAML error at that value instead of a bare ``ValueError``."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value ({exc})",
                                                    node.start_mark) from None


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _syntax(exc: yaml.MarkedYAMLError) -> str:
    """One line: where, what, and the construct it happened in."""
    what = " ".join(str(exc.problem or exc.context or "syntax error").split())
    text = f"at {_mark(exc.problem_mark)}: {what}" if exc.problem_mark else what
    if exc.problem and exc.context and exc.context_mark is not None:
        text += f" ({exc.context} at {_mark(exc.context_mark)})"
    return text


def _check_unique_keys(node: yaml.MappingNode, path: str) -> None:
    """Refuse a mapping that repeats a key (``yaml.safe_load`` keeps the last one silently:
    a second ``server:`` block would replace the first). Merge keys (``<<``) are left alone."""
    first: dict[tuple[str, str], Any] = {}
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
            continue
        seen = first.setdefault((k.tag, k.value), k.start_mark)
        if seen is not k.start_mark:
            raise YamlError(f"{path or '<root>'}: duplicate key {shown(k.value)} at "
                            f"{_mark(k.start_mark)} (first at line {seen.line + 1})")


def _check_nodes(root: yaml.Node) -> None:
    """Refuse a node graph, before anything is built from it, that holds an alias to a node
    containing that alias, nests more than :data:`_MAX_DEPTH` levels or whose aliases add more
    than :data:`_MAX_ALIAS_NODES` nodes once expanded. An alias shares its anchor's node, so
    each distinct node is visited once: a billion-laughs file costs no more than its text."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (size, height) with aliases expanded
    open_: set[int] = set()  # the nodes on the current path

    def visit(node: yaml.Node, path: str) -> tuple[int, int]:
        key = id(node)
        if key in open_:
            raise YamlError(f"{path or '<root>'}: refers to itself (a recursive YAML alias)")
        if key not in done:
            open_.add(key)
            children: list[tuple[yaml.Node, str]] = []
            if isinstance(node, yaml.SequenceNode):
                children = [(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
            elif isinstance(node, yaml.MappingNode):
                _check_unique_keys(node, path)
                for k, v in node.value:
                    sub = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                    sub = f"{path}.{sub}" if path else sub
                    children += [(k, sub), (v, sub)]
            size, height = 1, 1
            for child, sub in children:
                child_size, child_height = visit(child, sub)
                size, height = size + child_size, max(height, child_height + 1)
            open_.discard(key)
            done[key] = size, height
        return done[key]

    size, height = visit(root, "")
    if height > _MAX_DEPTH:
        raise YamlError(f"<root>: nested too deeply (more than {_MAX_DEPTH} levels)")
    if size - len(done) > _MAX_ALIAS_NODES:
        raise YamlError(f"<root>: YAML aliases expand too far (more than {_MAX_ALIAS_NODES} "
                        "extra nodes; write the values out instead)")


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` for files from outside: a syntax error is one line with its line and
    column; duplicate keys, deep nesting, recursive aliases and alias bombs are refused (see
    :func:`_check_nodes`). Raises :class:`YamlError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"<root>: not valid YAML {_syntax(exc)}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"<root>: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:  # PyYAML's composer recurses once per level
        raise YamlError(f"<root>: nested too deeply (more than {_MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()
