"""A local, deterministic complexity score: how much a request needs a stronger model.

``complexity(messages)`` returns a float in ``[0, 1]``; higher means the cheap
model is more likely to get the request wrong while the strong one gets it
right. The router calls it on every request, so it must cost microseconds and
never touch the network. It is a small linear model over features that are
cheap to compute with C-speed ``bytes`` operations:

- a bag of lower-cased words read from a bounded window of the text (the head
  and the tail: subject vocabulary and the actual question), so that a
  100 kB prompt costs no more than a 1 kB one;
- how many words that window holds, and whether the text is a
  multiple-choice question (which selects its own set of weights).

The weights were fit on one half of RouteLLM's public judgements (GSM8K and
MMLU, a hash of each prompt picks the half) and are shipped as package data
(``faremeter/data/complexity_model.json``, loaded on first use); the numbers
measured on the other half are in the docs (``routing-complexity.md``) and are
reproduced by ``faremeter eval-router``. See ``scripts/train_complexity.py``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import repeat
from typing import Any, cast

__all__ = ["FEATURE_NAMES", "ComplexityModel", "complexity", "extract_features",
           "is_multiple_choice", "load_model", "request_text"]  # fmt: skip

# How much of the text the word features read: the head (where the subject and
# the setting are) and the tail (where the question and the options are).
HEAD_CHARS = 320
TAIL_CHARS = 160
_WINDOW = HEAD_CHARS + TAIL_CHARS
# How far from the end the multiple-choice markers are looked for.
_PROBE_CHARS = 1024

# bytes -> bytes table for words: lower-cased ASCII letters and digits, anything
# else becomes a space (so "Egg," and "egg" are one word).
_KEEP = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz")
_WORD_TABLE = bytes((c + 32 if 65 <= c <= 90 else c if c in _KEEP else 32) for c in range(256))

FEATURE_NAMES: tuple[str, ...] = ("log_words",)
"""The count features, in the order of ``extract_features``' numeric vector.

Only what earned its place on the training half is computed: other counts that
were tried (digits, numbers, operators, question marks, lines, money and
percent signs) did not beat word count in cross-validation there, and each
costs time on every routing decision.
"""


def is_multiple_choice(text: str) -> bool:
    r"""Whether the text lists lettered options (``\nA. ... \nB. ...`` or ``\nA) ... \nB) ...``).

    Only the last ``_PROBE_CHARS`` characters are searched (options come last),
    which keeps the cost bounded on very long prompts.
    """
    probe = text[-_PROBE_CHARS:] if len(text) > _PROBE_CHARS else text
    return ("\nA." in probe and "\nB." in probe) or ("\nA)" in probe and "\nB)" in probe)


def extract_features(text: str) -> tuple[bool, list[float], list[bytes]]:
    """The model's inputs for one text: (is multiple choice, count features, words).

    Shared by the scorer and the training script, so the shipped weights see
    exactly the features they were fit on. Cost is bounded: the words come from
    at most ``HEAD_CHARS + TAIL_CHARS`` characters whatever the text's length.
    """
    window = text[:HEAD_CHARS] + " " + text[-TAIL_CHARS:] if len(text) > _WINDOW else text
    words = window.encode("utf-8", "surrogatepass").translate(_WORD_TABLE).split()
    return is_multiple_choice(text), [math.log1p(len(words))], words


@dataclass(frozen=True, kw_only=True, slots=True)
class ComplexityModel:
    """Weights of the linear score: per question style, count weights and word weights.

    Multiple-choice prompts and free-form ones have separate tables because the
    words and counts that make a question hard differ between the two.

    ``scale`` and ``shift`` map the raw linear score to ``[0, 1]`` through a
    logistic curve; they do not change the order of scores, only where the
    default routing threshold (0.5) falls.
    """

    bias: float
    numeric_free: tuple[float, ...]
    numeric_choice: tuple[float, ...]
    bias_choice: float
    words_free: Mapping[bytes, float]
    words_choice: Mapping[bytes, float]
    scale: float = 1.0
    shift: float = 0.0

    def raw(self, text: str) -> float:
        """The linear score (unbounded) of one text.

        The same arithmetic as ``extract_features`` followed by the weights,
        written out in one function because it runs on every routing decision.
        """
        if len(text) > _WINDOW:
            window = text[:HEAD_CHARS] + " " + text[-TAIL_CHARS:]
            probe = text[-_PROBE_CHARS:] if len(text) > _PROBE_CHARS else text
        else:
            window = probe = text
        words = window.encode("utf-8", "surrogatepass").translate(_WORD_TABLE).split()
        if ("\nA." in probe and "\nB." in probe) or ("\nA)" in probe and "\nB)" in probe):
            s = self.bias + self.bias_choice + self.numeric_choice[0] * math.log1p(len(words))
            table = self.words_choice
        else:
            s = self.bias + self.numeric_free[0] * math.log1p(len(words))
            table = self.words_free
        return s + sum(map(table.get, words, repeat(0.0)))  # type: ignore[arg-type]

    def score(self, text: str) -> float:
        """The score in ``[0, 1]``: the raw score through a logistic curve."""
        z = (self.raw(text) - self.shift) * self.scale
        z = -700.0 if z < -700.0 else min(z, 700.0)
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComplexityModel:
        """Build from the dict stored in ``complexity_model.json``."""
        names = tuple(data["features"])
        if names != FEATURE_NAMES:
            raise ValueError(f"complexity model expects features {names}, code has {FEATURE_NAMES}")
        return cls(
            bias=float(data["bias"]),
            bias_choice=float(data["bias_choice"]),
            numeric_free=tuple(float(v) for v in data["numeric_free"]),
            numeric_choice=tuple(float(v) for v in data["numeric_choice"]),
            words_free={k.encode("ascii"): float(v) for k, v in data["words_free"].items()},
            words_choice={k.encode("ascii"): float(v) for k, v in data["words_choice"].items()},
            scale=float(data.get("scale", 1.0)),
            shift=float(data.get("shift", 0.0)),
        )


_loaded: list[ComplexityModel] = []  # one entry once loaded (no global rebinding)
_LOCK = threading.Lock()


def _fallback_model() -> ComplexityModel:
    # Word count alone (the best single count on the training half): a usable
    # score when the bundled weights cannot be read, rather than an exception in
    # the host application's request path.
    return ComplexityModel(
        bias=0.0, bias_choice=0.0, numeric_free=(1.0,), numeric_choice=(1.0,),
        words_free={}, words_choice={}, scale=1.0, shift=math.log1p(60),
    )  # fmt: skip


def load_model() -> ComplexityModel:
    """The bundled model, read from package data on first use and then cached.

    If the file is missing or unreadable (a broken install), a warning is logged
    once and a word-count-only model is used instead: routing degrades, the
    application keeps running.
    """
    if not _loaded:
        with _LOCK:
            if not _loaded:
                try:
                    text = (
                        resources.files("faremeter.data")
                        .joinpath("complexity_model.json")
                        .read_text(encoding="utf-8")
                    )
                    model = ComplexityModel.from_json(json.loads(text))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    logging.getLogger("faremeter.routing").warning(
                        "complexity model unreadable (%s); scoring by word count only", exc
                    )
                    model = _fallback_model()
                _loaded.append(model)
    return _loaded[0]


def _as_mapping(value: object) -> Mapping[str, object] | None:
    return cast("Mapping[str, object]", value) if isinstance(value, Mapping) else None


def _part_text(part: object) -> str:
    if isinstance(part, str):
        return part
    mapping = _as_mapping(part)
    value = mapping.get("text") if mapping is not None else getattr(part, "text", None)
    return value if isinstance(value, str) else ""


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if _as_mapping(content) is not None:  # a single part
        return _part_text(content)
    if isinstance(content, Iterable):
        parts = cast("Iterable[object]", content)
        return "\n".join(t for t in map(_part_text, parts) if t)
    return str(content)


def _role(message: object) -> str | None:
    mapping = _as_mapping(message)
    if mapping is not None:
        role = mapping.get("role")
    else:
        role = getattr(message, "role", None)
        if role is None:
            role = getattr(message, "type", None)  # LangChain messages: "human", "ai", ...
    if role is None:
        return None
    value: object = getattr(role, "value", role)  # enums (LlamaIndex MessageRole)
    return str(value).lower()


def _message_content(message: object) -> object:
    if isinstance(message, str):
        return message
    mapping = _as_mapping(message)
    if mapping is not None:
        return mapping.get("content")
    return getattr(message, "content", None)


def request_text(messages: object) -> str:
    """The text a routing decision is about: the last user turn of a request.

    Accepts a string, a sequence of strings (turns; the last one is the
    request), OpenAI-style dicts (``content`` a string or a list of parts), or
    message objects with ``.content`` (and ``.role`` or LangChain's ``.type``).
    When no message has a user role, the last message with text is used
    (system prompts excepted); ``None`` or no messages give ``""``.

    Raises:
        TypeError: ``messages`` is none of these shapes.
    """
    if isinstance(messages, str):
        return messages
    if messages is None:
        return ""
    if isinstance(messages, bytes | bytearray):
        raise TypeError("complexity() expects text, not bytes: decode it first")
    if _as_mapping(messages) is not None or hasattr(messages, "content"):
        return _content_text(_message_content(messages))
    if not isinstance(messages, Sequence):
        raise TypeError(
            "complexity() expects a str, a sequence of str, OpenAI-style message dicts or "
            f"message objects with .content; got {type(messages).__name__}"
        )
    seq = cast("Sequence[object]", messages)
    fallback = ""
    for message in reversed(seq):
        if message.__class__ is dict:  # the common OpenAI shape, without ABC checks
            d = cast("dict[str, object]", message)
            content = d.get("content")
            if d.get("role") == "user" and isinstance(content, str):
                return content
        if isinstance(message, str):
            if message:
                return message
            continue
        role = _role(message)
        text = _content_text(_message_content(message))
        if role in ("user", "human"):
            return text
        if text and not fallback and role not in ("system", "developer"):
            fallback = text
    return fallback


def complexity(messages: object) -> float:
    """How much a request needs a stronger model, in ``[0, 1]`` (higher = stronger model).

    Deterministic, offline, and bounded in cost: it reads at most a few hundred
    characters for its word features, so it stays in the microseconds even for
    very long prompts. Scores are comparable between requests (route to the
    strong model above a threshold); they are not calibrated probabilities.

    Args:
        messages: a string, a sequence of strings, OpenAI-style message dicts or
            message objects with ``.content``; the last user turn is scored.

    Raises:
        TypeError: ``messages`` has an unsupported shape.
    """
    return load_model().score(request_text(messages))
