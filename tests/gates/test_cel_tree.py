"""Reading CEL into a tree: comparisons found with CEL's precedence, literals valued by the library."""

from __future__ import annotations

import pytest

from gates.cel_tree import Node, Unreadable, parse
from gates.loader import load_pipeline


def shape(node: Node) -> str:
    """The tree as nested text: `(== answers.x 3)`."""
    if node.kind == "literal":
        return repr(node.value)
    if node.kind == "name":
        return node.text
    if node.kind == "field":
        return f"{shape(node.args[0])}.{node.text}"
    head = {"index": "[]", "list": "list", "map": "map"}.get(node.kind, node.text)
    return f"({' '.join([head, *(shape(arg) for arg in node.args)])})"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('tier == "high" && sizee(answers) > 0', "(&& (== tier 'high') (> (sizee answers) 0))"),
        ("a || b && c == 1", "(|| a (&& b (== c 1)))"),
        ("a + 1 == 2 * b", "(== (+ a 1) (* 2 b))"),
        ("x < answers.n == true", "(== (< x answers.n) True)"),
        ("!answers.ok == false", "(== (! answers.ok) False)"),
        ("-3 < answers.n", "(< -3 answers.n)"),
        ('a ? b : c ? "d" : "e"', "(?: a b (?: c 'd' 'e'))"),
        ('answers["dpia link"] in ["a", "b",]', "(in ([] answers 'dpia link') (list 'a' 'b'))"),
        ('answers.r.exists(r, r == "eu")', "(exists answers.r r (== r 'eu'))"),
        ('{"a": 1}["a"] == 1 // a comment', "(== ([] (map 'a' 1) 'a') 1)"),
    ],
)
def test_an_expression_reads_with_cel_precedence(source: str, expected: str) -> None:
    assert shape(parse(source)) == expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"say \"hi\"\n"', 'say "hi"\n'),
        (r"'it\'s'", "it's"),
        (r'r"a\d"', "a\\d"),
        ('"""two\nlines"""', "two\nlines"),
        ("0x1F", 31),
        ("3u", 3),
        ("2.5e1", 25.0),
        ("-7", -7),
        ('b"ab"', b"ab"),
        ("null", None),
    ],
)
def test_a_literal_has_the_value_cel_gives_it(literal: str, value: object) -> None:
    node = parse(literal)
    assert node.kind == "literal" and node.value == value


@pytest.mark.parametrize("source", ["Msg{a: 1}", ".answers", "answers.`x-y`"])
def test_syntax_the_reader_does_not_follow_is_said_to_be_unreadable(source: str) -> None:
    with pytest.raises(Unreadable):
        parse(source)


def test_every_rule_of_the_bundled_pipeline_is_read() -> None:
    # Otherwise its comparisons would go unchecked without a word.
    for source in load_pipeline().conditions:
        parse(source)


def test_a_chain_of_a_thousand_alternatives_is_walked_in_order() -> None:
    tree = parse(" || ".join(f"x == {n}" for n in range(1000)))
    literals = [node.value for node in tree.walk() if node.kind == "literal"]
    assert literals == list(range(1000))


def test_brackets_nested_too_deeply_to_read_are_unreadable() -> None:
    with pytest.raises(Unreadable, match="nested too deeply"):
        parse("(" * 2000 + "true" + ")" * 2000)
