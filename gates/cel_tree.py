"""CEL expressions read into a small tree, for checks made without evaluating them.

The CEL library compiles an expression but does not show its parse tree, and a dry run over
sample answers only sees the branches those answers take: ``tier == "high" && sizee(answers)``
never calls ``sizee`` when ``tier`` is ``"low"``. Reading the expression here finds every
comparison, in every branch.

This reader is only given text the library has already compiled, so it need not explain
syntax errors: on anything it does not know (the library's own newer syntax, say) it raises
``Unreadable`` and the caller skips the checks it would have made, rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import cel


class Unreadable(ValueError):
    """The expression uses syntax this reader does not know."""


@dataclass(frozen=True)
class Node:
    """One node of the tree: ``kind`` says which fields mean what.

    Kinds: ``literal`` (``text`` as written, ``value`` as CEL reads it), ``name`` (``text``),
    ``field`` (``args[0]`` then ``.text``), ``index`` (``args[0][args[1]]``), ``call``
    (``text(*args)``, or ``args[0].text(*args[1:])`` when ``method``), ``operator`` (``text``
    applied to ``args``: binary, unary ``!``/``-``, or ``?:`` with three), ``list``, ``map``
    (keys and values alternating in ``args``).
    """

    kind: str
    text: str = ""
    args: tuple[Node, ...] = ()
    value: Any = None
    method: bool = False

    def walk(self) -> Iterator[Node]:
        """This node and every node under it, in prefix order. Without recursion: a long chain
        of `||` is a tree as deep as it is long (a thousand codes, say)."""
        pending = [self]
        while pending:
            node = pending.pop()
            yield node
            pending.extend(reversed(node.args))


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
        |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<symbol>==|!=|<=|>=|&&|\|\||[<>!?:+\-*/%.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
_CONSTANTS = {"true": True, "false": False, "null": None}


def parse(source: str) -> Node:
    """The tree of ``source``, an expression the CEL library compiles.

    Raises:
        Unreadable: syntax this reader does not follow.
    """
    try:
        return _Parser(_tokens(source)).expression_to_end()
    except RecursionError:  # brackets nested hundreds deep, which the library may still compile
        raise Unreadable("nested too deeply to read") from None


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise Unreadable(f"unexpected {source[position]!r} at column {position + 1}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            text = match.group()
            tokens.append(("symbol" if kind == "name" and text == "in" else kind, text))
    return tokens


class _Parser:
    """Recursive descent over CEL's grammar, loosest binding first."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens
        self._at = 0

    def expression_to_end(self) -> Node:
        node = self._expression()
        if self._at != len(self._tokens):
            raise Unreadable(f"unexpected {self._peek()!r}")
        return node

    def _peek(self) -> str:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else ""

    def _take(self, *symbols: str) -> str | None:
        return self._take_one(symbols)

    def _take_one(self, symbols: Collection[str]) -> str | None:
        if self._at < len(self._tokens):
            kind, text = self._tokens[self._at]
            if kind == "symbol" and text in symbols:
                self._at += 1
                return text
        return None

    def _expect(self, symbol: str) -> None:
        if self._take(symbol) is None:
            raise Unreadable(f"expected {symbol!r}, found {self._peek()!r}")

    def _expression(self) -> Node:
        condition = self._binary(0)
        if self._take("?") is None:
            return condition
        then = self._binary(0)
        self._expect(":")
        return Node("operator", "?:", (condition, then, self._expression()))

    _LEVELS: tuple[frozenset[str], ...] = (
        frozenset({"||"}),
        frozenset({"&&"}),
        _RELATIONS,
        frozenset({"+", "-"}),
        frozenset({"*", "/", "%"}),
    )

    def _binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self._unary()
        node = self._binary(level + 1)
        while (operator := self._take_one(self._LEVELS[level])) is not None:
            node = Node("operator", operator, (node, self._binary(level + 1)))
        return node

    def _unary(self) -> Node:
        operator = self._take("!", "-")
        if operator is None:
            return self._member()
        operand = self._unary()
        if operator == "-" and operand.kind == "literal" and isinstance(operand.value, int | float):
            return _literal(f"-{operand.text}")
        return Node("operator", operator, (operand,))

    def _member(self) -> Node:
        node = self._primary()
        while True:
            if self._take(".") is not None:
                name = self._name()
                if self._take("(") is not None:
                    node = Node("call", name, (node, *self._items(")")), method=True)
                else:
                    node = Node("field", name, (node,))
            elif self._take("[") is not None:
                node = Node("index", "", (node, self._expression()))
                self._expect("]")
            elif self._peek() == "{":
                raise Unreadable("message construction")
            else:
                return node

    def _primary(self) -> Node:
        if self._take("(") is not None:
            node = self._expression()
            self._expect(")")
            return node
        if self._take("[") is not None:
            return Node("list", "", tuple(self._items("]")))
        if self._take("{") is not None:
            entries: list[Node] = []
            while self._take("}") is None:
                entries.append(self._expression())
                self._expect(":")
                entries.append(self._expression())
                if self._take(",") is None:
                    self._expect("}")
                    break
            return Node("map", "", tuple(entries))
        if self._at >= len(self._tokens):
            raise Unreadable("the expression ends too soon")
        kind, text = self._tokens[self._at]
        if kind in ("string", "number"):
            self._at += 1
            return _literal(text)
        if kind == "name":
            self._at += 1
            if text in _CONSTANTS:
                return Node("literal", text, value=_CONSTANTS[text])
            if self._take("(") is not None:
                return Node("call", text, tuple(self._items(")")))
            return Node("name", text)
        raise Unreadable(f"unexpected {text!r}")

    def _name(self) -> str:
        if self._at < len(self._tokens) and self._tokens[self._at][0] == "name":
            self._at += 1
            return self._tokens[self._at - 1][1]
        raise Unreadable(f"expected a name after '.', found {self._peek()!r}")

    def _items(self, closing: str) -> list[Node]:
        """Comma-separated expressions up to ``closing`` (a trailing comma allowed)."""
        items: list[Node] = []
        while self._take(closing) is None:
            items.append(self._expression())
            if self._take(",") is None:
                self._expect(closing)
                break
        return items


def _literal(text: str) -> Node:
    # The library reads its own literals (escapes, raw and triple-quoted strings, 0x1F, 3u).
    try:
        value = cel.evaluate(text)
    except (ValueError, RuntimeError, TypeError) as error:
        raise Unreadable(f"literal {text}: {error}") from None
    return Node("literal", text, value=value)
