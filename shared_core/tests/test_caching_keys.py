"""Canonical cache keys: what must share a key and what must not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faremeter.caching.keys import bind_arguments, canonical_json, make_key


def test_dict_order_does_not_matter() -> None:
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    assert canonical_json({"a": 1, "b": 2}) == '{"a":1,"b":2}'


def test_nested_dict_order_does_not_matter() -> None:
    one = {"q": {"x": [1, {"k": "v", "j": None}], "y": True}}
    two = {"q": {"y": True, "x": [1, {"j": None, "k": "v"}]}}
    assert canonical_json(one) == canonical_json(two)


def test_numbers_compare_by_value_strings_do_not() -> None:
    # The documented rule: 1, 1.0 and Decimal("1.00") are one key; "1" and True are not.
    assert canonical_json(1) == canonical_json(1.0) == canonical_json(Decimal("1.00")) == "1"
    assert canonical_json("1") == '"1"'
    assert canonical_json("1") != canonical_json(1)
    assert canonical_json(True) != canonical_json(1)
    assert canonical_json(-0.0) == "0"
    assert canonical_json(0.1) == canonical_json(Decimal("0.1")) == "0.1"
    assert canonical_json(2.5e-6) == canonical_json(Decimal("0.0000025")) == "2.5e-06"
    with pytest.raises(TypeError, match="more precise"):
        canonical_json(Decimal("0.10000000000000000000001"))
    assert canonical_json(1e20) == "100000000000000000000"


def test_nfc_normalisation_of_values_and_keys() -> None:
    composed = "caf\u00e9"
    decomposed = "cafe\u0301"
    assert composed != decomposed
    assert canonical_json(composed) == canonical_json(decomposed)
    assert canonical_json({decomposed: 1}) == canonical_json({composed: 1})


def test_keys_colliding_after_normalisation_are_rejected() -> None:
    with pytest.raises(ValueError, match="NFC"):
        canonical_json({"caf\u00e9": 1, "cafe\u0301": 2})


def test_unserialisable_values_name_their_path() -> None:
    with pytest.raises(TypeError, match=r"\$\.q\[1\] is a object"):
        canonical_json({"q": [1, object()]})
    with pytest.raises(TypeError, match="keys must be strings"):
        canonical_json({1: "a"})
    with pytest.raises(ValueError, match="NaN"):
        canonical_json(float("nan"))


def test_structured_values() -> None:
    @dataclass
    class Point:
        y: int
        x: int

    assert canonical_json(Point(y=2, x=1)) == '{"x":1,"y":2}'
    assert canonical_json((1, 2)) == canonical_json([1, 2])
    assert canonical_json({3, 1, 2}) == "[1,2,3]"
    assert canonical_json(datetime(2026, 1, 1, tzinfo=UTC)) == '"2026-01-01T00:00:00+00:00"'
    assert canonical_json('a"b\n') == '"a\\"b\\n"'
    assert canonical_json(uuid.UUID(int=1)) == '"00000000-0000-0000-0000-000000000001"'


def test_make_key_shape() -> None:
    key = make_key("tool", "web_search", {"q": "x"})
    namespace, name, digest = key.split(":")
    assert (namespace, name, len(digest)) == ("tool", "web_search", 32)
    assert make_key("tool", "other", {"q": "x"}) != key


def test_bind_arguments_positional_keyword_and_defaults_agree() -> None:
    def search(query: str, limit: int = 10, **extra: object) -> None: ...

    a = bind_arguments(search, ("q",), {})
    b = bind_arguments(search, (), {"query": "q", "limit": 10})
    assert canonical_json(a) == canonical_json(b)
    assert bind_arguments(search, ("q",), {"lang": "en"}) == {
        "query": "q",
        "limit": 10,
        "lang": "en",
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text("abcxyz\u00e9", max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_is_valid_json_and_stable_under_reordering(value: object) -> None:
    import json

    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text

    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            items: dict[str, Any] = v  # pyright: ignore[reportUnknownVariableType]
            return {k: reverse(items[k]) for k in reversed(list(items))}
        if isinstance(v, list):
            return [reverse(x) for x in v]  # pyright: ignore[reportUnknownVariableType]
        return v

    assert canonical_json(reverse(value)) == text


def test_bind_arguments_fast_path_agrees_with_signature_bind() -> None:
    def f(a: int, b: int = 2, c: str = "x") -> None: ...

    assert bind_arguments(f, (1,), {}) == {"a": 1, "b": 2, "c": "x"}
    assert bind_arguments(f, (1, 3), {"c": "y"}) == {"a": 1, "b": 3, "c": "y"}
    assert bind_arguments(f, (), {"c": "y", "a": 0}) == {"a": 0, "b": 2, "c": "y"}
    for args, kwargs in [((), {}), ((1,), {"a": 1}), ((1,), {"zz": 1}), ((1, 2, 3, 4), {})]:
        with pytest.raises(TypeError):
            bind_arguments(f, args, kwargs)

    def g(*items: int, **options: int) -> None: ...

    assert bind_arguments(g, (1, 2), {"k": 3}) == {"*items": [1, 2], "k": 3}
