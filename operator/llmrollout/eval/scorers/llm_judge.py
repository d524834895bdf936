"""llmJudge: a judge model grades the answer by a rubric; its reply is parsed robustly.

Whatever the judge says that is not a clear score or verdict is "unparseable", never a pass.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from llmrollout.eval._openai import EndpointError, OpenAIClient
from llmrollout.eval._types import Exchange, Message, Score, Usage

DEFAULT_RUBRIC = """You are grading an assistant's answer.

Question:
{question}

Reference answer (may be empty):
{reference}

Grading rubric:
{rubric}

Answer to grade:
{answer}

Reply with only a JSON object: {"score": <a number from 0 to 1>, "reason": "<one sentence>"}"""

DEFAULT_ITEM_RUBRIC = "Correct, complete and consistent with the reference; no invented facts."

PAIRWISE_RUBRIC = """You are comparing two answers to the same question.

Question:
{question}

Reference answer (may be empty):
{reference}

Grading rubric:
{rubric}

Answer A:
{answer_a}

Answer B:
{answer_b}

Reply with only a JSON object: {"winner": "A" | "B" | "tie", "reason": "<one sentence>"}"""

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_SCORE = re.compile(
    r"\bscore\b\s*(?:is|of|[:=])?\s*\**\s*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_VERDICT = re.compile(r"\b(?:verdict|result|grade)\b\s*[:=]?\s*\**\s*(pass|fail)\b", re.IGNORECASE)
_LONE_VERDICT = re.compile(r"^\W*(pass|fail)(?:ed)?\W*$", re.IGNORECASE | re.MULTILINE)
_WINNER = re.compile(r"\bwinner\b\s*[:=]?\s*\**\s*\"?(A|B|tie)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    """What a judge reply says: a score in [0, 1], an explicit verdict, or neither (unparseable)."""

    score: float | None
    passed: bool | None
    reason: str = ""

    @property
    def parseable(self) -> bool:
        return self.score is not None or self.passed is not None


def fill(template: str, **values: str) -> str:
    # Not str.format: templates carry literal JSON braces, and answers may contain "{...}".
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found = []
    for start in (i for i, c in enumerate(text) if c == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _fraction(value: Any, denominator: Any = None) -> float | None:
    """A score in [0, 1], or "n/d" scaled into it; anything else (bools, 7 with no scale) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        parts = value.strip().split("/")
        if len(parts) == 2:
            value, denominator = parts
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if denominator is not None:
        try:
            scale = float(denominator)
        except (TypeError, ValueError):
            return None
        if scale <= 0 or not 0 <= value <= scale:
            return None
        return float(value) / scale
    return float(value) if 0 <= value <= 1 else None


def _verdict_word(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("pass", "passed", "fail", "failed"):
        return value.strip().lower().startswith("pass")
    return None


def read_verdict(text: str) -> Reading:
    """Parse a judge reply: the last JSON object with a score or verdict, else "score: x[/n]" and
    "verdict: pass|fail" phrases. Contradictory phrases make it unparseable."""
    text = _THINK.sub("", text)
    for obj in reversed(_json_objects(text)):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        score = _fraction(lowered["score"], lowered.get("max_score")) if "score" in lowered else None
        verdict = None
        for key in ("pass", "passed", "verdict", "result"):
            if key in lowered:
                verdict = _verdict_word(lowered[key])
                break
        if score is not None or verdict is not None:
            return Reading(score, verdict, str(lowered.get("reason", ""))[:300])
        if "score" in lowered:
            return Reading(None, None, f"score {lowered['score']!r} is not in [0, 1]")
    scores = {_fraction(m.group(1), m.group(2)) for m in _SCORE.finditer(text)}
    verdicts = {m.group(1).lower() == "pass" for m in _VERDICT.finditer(text)}
    verdicts |= {m.group(1).lower() == "pass" for m in _LONE_VERDICT.finditer(text)}
    if None in scores or len(scores) > 1 or len(verdicts) > 1:
        return Reading(None, None, "ambiguous or out-of-range score or verdict")
    score = next(iter(scores), None)
    verdict = next(iter(verdicts), None)
    return Reading(score, verdict, text.strip()[:300])


Winner = Literal["A", "B", "tie"]


def read_winner(text: str) -> Winner | None:
    text = _THINK.sub("", text)
    for obj in reversed(_json_objects(text)):
        winner = {str(k).lower(): v for k, v in obj.items()}.get("winner")
        if isinstance(winner, str) and winner.strip().upper() in ("A", "B", "TIE"):
            choice = winner.strip().upper()
            return "tie" if choice == "TIE" else "A" if choice == "A" else "B"
    found = {m.group(1).upper() for m in _WINNER.finditer(text)}
    if len(found) != 1:
        return None
    choice = found.pop()
    return "tie" if choice == "TIE" else "A" if choice == "A" else "B"


Preference = Literal["first", "second", "tie", "inconsistent", "unparseable", "error"]


@dataclass(frozen=True)
class Comparison:
    preference: Preference
    detail: str
    usage: Usage


class LLMJudge:
    name = "llmJudge"
    needs_reference = False

    def __init__(
        self,
        client: OpenAIClient,
        model: str,
        *,
        template: str | None = None,
        pairwise_template: str | None = None,
        pass_threshold: float = 0.5,
        max_tokens: int | None = 512,
    ) -> None:
        self._client = client
        self._model = model
        self._template = template or DEFAULT_RUBRIC
        self._pairwise_template = pairwise_template or PAIRWISE_RUBRIC
        self.pass_threshold = pass_threshold
        self._max_tokens = max_tokens

    def _ask(self, prompt: str) -> tuple[str, Usage]:
        messages: list[Message] = [{"role": "user", "content": prompt}]
        completion = self._client.chat(self._model, messages, temperature=0.0, max_tokens=self._max_tokens)
        return completion.text, completion.usage

    def score(self, exchange: Exchange) -> Score:
        prompt = fill(
            self._template,
            question=exchange.question,
            reference=_reference(exchange),
            rubric=exchange.rubric or DEFAULT_ITEM_RUBRIC,
            answer=exchange.response,
        )
        try:
            reply, usage = self._ask(prompt)
        except EndpointError as error:
            return Score("error", None, str(error))
        reading = read_verdict(reply)
        if not reading.parseable:
            return Score("unparseable", None, f"judge said: {reply.strip()[:200]!r}", usage)
        if reading.score is not None:
            passed = reading.passed if reading.passed is not None else reading.score >= self.pass_threshold
            return Score.of(reading.score, passed, reading.reason, usage)
        assert reading.passed is not None
        return Score.of(1.0 if reading.passed else 0.0, reading.passed, reading.reason, usage)

    def compare(self, exchange: Exchange, first: str, second: str, *, swap: bool = True) -> Comparison:
        """Which of two answers to the same question is better. With `swap`, the judge sees both
        orders and a preference that flips with the order is "inconsistent" (position bias), not a win.
        """
        orders = [(first, second), (second, first)] if swap else [(first, second)]
        picks: list[Winner] = []
        usage = Usage()
        for a, b in orders:
            prompt = fill(
                self._pairwise_template,
                question=exchange.question,
                reference=_reference(exchange),
                rubric=exchange.rubric or DEFAULT_ITEM_RUBRIC,
                answer_a=a,
                answer_b=b,
            )
            try:
                reply, spent = self._ask(prompt)
            except EndpointError as error:
                return Comparison("error", str(error), usage)
            usage = usage + spent
            winner = read_winner(reply)
            if winner is None:
                return Comparison("unparseable", f"judge said: {reply.strip()[:200]!r}", usage)
            picks.append(winner)
        as_first = [_in_original_order(pick, swapped=i == 1) for i, pick in enumerate(picks)]
        if len(set(as_first)) > 1:
            return Comparison("inconsistent", f"the preference followed the position: {picks}", usage)
        return Comparison(as_first[0], "", usage)


def _in_original_order(pick: Winner, *, swapped: bool) -> Preference:
    if pick == "tie":
        return "tie"
    first_won = (pick == "A") != swapped
    return "first" if first_won else "second"


def _reference(exchange: Exchange) -> str:
    if exchange.reference is None:
        return ""
    if isinstance(exchange.reference, str):
        return exchange.reference
    return json.dumps(exchange.reference)
