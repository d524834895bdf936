"""Value types shared by the client, the scorers, the engine and the judge service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict


class Message(TypedDict):
    role: str
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens
        )


@dataclass(frozen=True)
class Exchange:
    """One question and the answer to score: a golden-set item answered by a variant, or a production
    exchange posted to the judge service."""

    messages: tuple[Message, ...]
    response: str
    reference: str | dict[str, Any] | None = None
    rubric: str | None = None
    item_id: str = ""

    @property
    def question(self) -> str:
        """The last user turn: what the judge is told the answer answers."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return self.messages[-1]["content"] if self.messages else ""


Verdict = Literal["pass", "fail", "unparseable", "error"]


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one answer.

    `value` is in [0, 1] for pass and fail; it is None for "unparseable" (the judge answered but not in a
    form we can read) and "error" (the judge or embeddings endpoint could not be asked). Neither of those
    ever counts as a pass.
    """

    verdict: Verdict
    value: float | None
    detail: str = ""
    usage: Usage = Usage()

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def scored(self) -> bool:
        return self.value is not None

    @staticmethod
    def of(value: float, passed: bool, detail: str = "", usage: Usage = Usage()) -> Score:
        return Score("pass" if passed else "fail", min(1.0, max(0.0, value)), detail, usage)
