"""Content-addressed cache keys: one canonical JSON text per meaning.

Two calls must share a key exactly when they ask the same thing. The rules:

* **Objects**: keys are sorted, so ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}``
  are one key. Object keys must be strings (JSON's rule); two keys that become
  equal after normalisation are an error, not a silent overwrite.
* **Text** (values and object keys) is Unicode NFC-normalised: ``"café"``
  typed with a combining accent and with a precomposed ``é`` is one key.
* **Numbers** compare by value: ``1``, ``1.0`` and ``Decimal("1.00")`` are one
  key, written ``1`` (tool arguments arrive as JSON, where ``1`` vs ``1.0``
  is an accident of whoever serialised them). Non-integral numbers are written
  as the shortest float that reads back exactly (``0.1`` for ``0.1`` and
  ``Decimal("0.1")``); a ``Decimal`` more precise than a float is rejected
  (pass it as a string) rather than keyed at lower precision, where two
  different values would share one entry. ``-0.0`` is ``0``. NaN and
  infinities are rejected (they are not JSON).
* **Strings are not numbers**: ``"1"`` is a different key from ``1``, and
  ``True`` is a different key from ``1`` (a tool may treat them differently).
* Lists and tuples are the same sequence; sets and frozensets become sorted
  lists; pydantic models and dataclasses are their fields; ``datetime``,
  ``date``, ``UUID`` and ``Enum`` values are their ISO / string / value form.
  Anything else is rejected with the path of the offending value, so a key
  never silently depends on an object's ``repr`` (which often holds a memory
  address and would never hit).

The key itself is ``<namespace>:<name>:<blake2b-128 of the canonical text>``:
short, fixed length, safe in Redis and SQLite, and readable enough to tell
which tool or model an entry belongs to.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import json
import sys
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

__all__ = ["bind_arguments", "canonical_json", "digest", "make_key"]

_NFC = "NFC"


def _text(value: str) -> str:
    # is_normalized is a quick C check; most text is already NFC.
    return value if unicodedata.is_normalized(_NFC, value) else unicodedata.normalize(_NFC, value)


def _number(value: float | Decimal, path: str) -> int | float:
    """Integral numbers become ints; others a float that round-trips exactly."""
    if not isinstance(value, Decimal):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"cache key: {path} is {value!r}; NaN and infinities are not JSON")
        return int(number) if number.is_integer() else number
    if not value.is_finite():
        raise ValueError(f"cache key: {path} is {value!r}; NaN and infinities are not JSON")
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise TypeError(
            f"cache key: {path} is Decimal({str(value)!r}), more precise than a JSON number "
            "keeps; pass it as a string"
        )
    return as_float


def _normalise(value: Any, path: str) -> Any:
    """``value`` as plain JSON data following the module's rules."""
    kind: type[Any] = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is str:
        return _text(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return _number(value, path)
    if kind is dict or isinstance(value, Mapping):
        return _normalise_object(value, path)  # pyright: ignore[reportUnknownArgumentType]
    if kind is list or kind is tuple:
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    # Less common types; order matters: bool is an int, str-valued enums are strs.
    if isinstance(value, enum.Enum):
        return _normalise(value.value, path)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float | Decimal):
        return _number(value, path)
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    if isinstance(value, set | frozenset):
        items = [_normalise(item, f"{path}[]") for item in value]  # pyright: ignore[reportUnknownVariableType]
        return sorted(items, key=_dumps)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    uuid_module = sys.modules.get("uuid")  # a UUID exists only if uuid was imported
    if uuid_module is not None and isinstance(value, uuid_module.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _normalise_object(fields, path)
    if callable(dump := getattr(value, "model_dump", None)):
        return _normalise(dump(mode="json"), path)
    raise TypeError(
        f"cache key: {path} is a {type(value).__name__}, which has no canonical JSON form; "
        "pass JSON-like arguments (dict, list, str, number, bool, None), a pydantic model "
        "or a dataclass, or give the cache a key= function"
    )


def _normalise_object(value: Mapping[Any, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, item in value.items():
        if type(raw_key) is not str:
            if not isinstance(raw_key, str):
                raise TypeError(
                    f"cache key: {path} has a {type(raw_key).__name__} key {raw_key!r}; "
                    "object keys must be strings (as in JSON)"
                )
            raw_key = str(raw_key)
        key = _text(raw_key)
        if key in out:
            raise ValueError(
                f"cache key: {path} has two keys equal to {key!r} after NFC normalisation"
            )
        out[key] = _normalise(item, f"{path}.{key}")
    return out


_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (rules in the module docstring).

    Raises:
        TypeError: For values with no canonical form, naming where they are.
        ValueError: For NaN/infinity and keys that collide after normalisation.
    """
    return _dumps(_normalise(value, "$"))


def digest(text: str) -> str:
    """32 hex digits (BLAKE2b-128) of ``text``: collision-safe and short."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def make_key(namespace: str, name: str, value: Any) -> str:
    """``namespace:name:digest(canonical_json(value))``."""
    return f"{namespace}:{name}:{digest(canonical_json(value))}"


class _Binder:
    """Binds a call's arguments to parameter names; fast for plain signatures.

    ``inspect.Signature.bind`` costs more than the rest of a cache hit, so for
    the common signature (named parameters only) binding is a zip over
    precomputed names and defaults; anything else goes through ``bind``.
    """

    __slots__ = ("defaults", "names", "plain", "signature")

    def __init__(self, signature: inspect.Signature) -> None:
        self.signature = signature
        params = list(signature.parameters.values())
        self.plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self.names = tuple(p.name for p in params)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if self.plain and len(args) <= len(self.names):
            out = dict(self.defaults)
            out.update(zip(self.names, args, strict=False))  # args may be fewer
            if kwargs:
                names = self.names
                for name in kwargs:
                    if name not in names or name in names[: len(args)]:
                        return self.slow(args, kwargs)  # let bind() raise the real error
                out.update(kwargs)
            if len(out) == len(self.names):
                return out
        return self.slow(args, kwargs)

    def slow(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                out[f"*{name}"] = list(value)
            else:
                out[name] = value
        return out


@functools.lru_cache(maxsize=1024)
def _binder(fn: Callable[..., Any]) -> _Binder:
    return _Binder(inspect.signature(fn))


def bind_arguments(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied.

    So ``search("q")``, ``search(query="q")`` and ``search("q", limit=10)`` (when
    10 is the default) are one key. Falls back to ``{"args": [...], "kwargs": {...}}``
    for callables without an inspectable signature.

    Raises:
        TypeError: When the arguments do not fit the signature (as the call would).
    """
    try:
        binder = _binder(fn)
    except (TypeError, ValueError):
        return {"args": list(args), "kwargs": dict(kwargs)}
    return binder.bind(args, kwargs)
