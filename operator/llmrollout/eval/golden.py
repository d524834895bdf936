"""The golden-set format: JSONL, one item a line: id, messages or prompt, optional reference and rubric."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmrollout.eval._types import Exchange, Message

MAX_ITEMS = 10_000


class GoldenSetError(ValueError):
    """The golden set cannot be used as written; the message names the line."""


class GoldenMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class GoldenItem(BaseModel):
    # Extra keys (tags, sources, notes) are the author's; they do not change how the item is scored.
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(min_length=1, max_length=253)
    messages: tuple[GoldenMessage, ...] | None = Field(None, min_length=1)
    prompt: str | None = Field(None, min_length=1)
    reference: str | dict[str, Any] | None = None
    rubric: str | None = None

    @model_validator(mode="after")
    def _one_question(self) -> GoldenItem:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        return self

    def conversation(self) -> tuple[Message, ...]:
        if self.messages is not None:
            return tuple(Message(role=m.role, content=m.content) for m in self.messages)
        assert self.prompt is not None
        return (Message(role="user", content=self.prompt),)

    def exchange(self, response: str) -> Exchange:
        return Exchange(self.conversation(), response, self.reference, self.rubric, self.id)


def load_golden_set(text: str, *, needs_reference: bool = False) -> tuple[GoldenItem, ...]:
    items: list[GoldenItem] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise GoldenSetError(f"line {number}: not JSON ({error.msg})") from None
        try:
            item = GoldenItem.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            raise GoldenSetError(f"line {number}: {problems}") from None
        if item.id in seen:
            raise GoldenSetError(f"line {number}: duplicate id {item.id!r}")
        if needs_reference and item.reference is None:
            raise GoldenSetError(f"line {number}: item {item.id!r} has no reference, which the scorer needs")
        seen.add(item.id)
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise GoldenSetError(f"more than {MAX_ITEMS} items")
    if not items:
        raise GoldenSetError("the golden set has no items")
    return tuple(items)
