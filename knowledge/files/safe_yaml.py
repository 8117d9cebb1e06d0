"""YAML from files deskbot did not write: `yaml.safe_load`, plus the limits it lacks.

`safe_load` alone lets a small file cost unbounded time or memory, or raise errors other
than `yaml.YAMLError`: an alias bomb ("billion laughs": a few lines whose aliases expand
to billions of nodes once anything walks, prints or copies the result), an alias that
contains itself, nesting deep enough to exhaust Python's stack, integers past Python's
4,300-digit limit (`0b111...` loads, then cannot be printed), impossible dates
(`2001-13-45`) and bad explicit tags (`!!int x`). `load_yaml` refuses all of them with a
`YamlError`, a `yaml.YAMLError` whose message is short enough to print.

Example:
    >>> load_yaml("a: [1, 2]")
    {'a': [1, 2]}
    >>> load_yaml("a: &x [1, *x]")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
      ...
    deskbot.knowledge.files.safe_yaml.YamlError: an alias refers to a node that contains it (line 1)
"""

from __future__ import annotations

from typing import Any

import yaml

# A document may expand to this many nodes through its aliases, or to this many times
# its own node count if that is larger (a little sharing is normal; bombs are 10^6x).
MAX_EXPANDED_NODES = 1_000_000
MAX_EXPANSION = 10
# Python prints integers of up to 4,300 digits (about 14,284 bits).
MAX_INT_BITS = 14_000
MAX_MESSAGE_CHARS = 400
# Deeper nesting is refused: no file of ours needs it, and code that walks the values
# recursively (printing them, for one) would run out of stack.
MAX_DEPTH = 100


class YamlError(yaml.YAMLError):
    """The text is not YAML deskbot will load; the message says why (and where)."""


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = super().construct_yaml_int(node)
        if abs(value).bit_length() > MAX_INT_BITS:
            raise yaml.constructor.ConstructorError(
                None, None, "an integer of more than 4,000 digits", node.start_mark
            )
        return value


_Constructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:int", _Constructor.construct_yaml_int
)


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _Constructor,
    yaml.resolver.Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


_FastLoader: type[Any] | None = None
try:
    import yaml.cyaml  # only there when PyYAML was built with libyaml

    _CParser: Any = getattr(yaml.cyaml, "CParser", None)
except ImportError:
    _CParser = None
if _CParser is not None:  # libyaml parses about 10x faster; the values are the same

    class _CLoader(_CParser, _Constructor, yaml.resolver.Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _Constructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _FastLoader = _CLoader


def load_yaml(text: str) -> Any:
    """The one YAML document in `text` (None when empty), as `yaml.safe_load` reads it.

    Raises:
        YamlError: not YAML, or past a limit above; the message is at most a few lines.
    """
    return load_yaml_with_node(text)[0]


def load_yaml_with_node(text: str) -> tuple[Any, yaml.Node | None]:
    """`load_yaml`, and the document's node tree (for line numbers)."""
    loader = (_FastLoader or _Loader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node)
        return loader.construct_document(node), node
    except YamlError:
        raise
    except yaml.YAMLError as exc:
        raise YamlError(shorten(str(exc))) from None
    except RecursionError:
        raise YamlError("nested too deeply (lists or mappings inside each other)") from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors let these through for values such as 2001-13-45 or `!!int x`.
        mark = getattr(loader, "get_mark", lambda: None)()
        line = mark.line + 1 if mark is not None else None
        raise YamlError(
            shorten(f"a value cannot be read ({exc})") + (f" (near line {line})" if line else "")
        ) from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse self-containing aliases and documents whose aliases expand past the limits
    (without expanding them: each distinct node is visited once)."""
    distinct = 0
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 1)]
    limit = MAX_EXPANDED_NODES
    while stack:
        node, done, depth = stack.pop()
        key = id(node)
        if done:
            entered.discard(key)
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = size
            if size > limit:
                raise YamlError(
                    f"its aliases expand to more than {limit:,} values (line "
                    f"{node.start_mark.line + 1}); write the values out, or use fewer aliases"
                )
            continue
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            raise YamlError(
                f"nested more than {MAX_DEPTH} levels deep (line {node.start_mark.line + 1})"
            )
        distinct += 1
        limit = max(MAX_EXPANDED_NODES, MAX_EXPANSION * distinct)
        entered.add(key)
        stack.append((node, True, depth))
        for child in _children(node):
            if id(child) in entered:
                raise YamlError(
                    f"an alias refers to a node that contains it (line {child.start_mark.line + 1})"
                )
            if id(child) not in sizes:
                stack.append((child, False, depth + 1))


def shorten(message: str) -> str:
    """`message` on one line, cut in the middle when long."""
    flat = " ".join(message.split())
    if len(flat) <= MAX_MESSAGE_CHARS:
        return flat
    half = MAX_MESSAGE_CHARS // 2
    return f"{flat[:half]} … {flat[-half:]}"


def brief(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut in the middle past `limit` characters (for error messages)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}…{text[-(limit // 2) :]} ({len(text):,} characters)"
