"""The golden-set JSONL format: what loads, and errors that name the line."""

from __future__ import annotations

import pytest

from llmrollout.eval import GoldenSetError, load_golden_set


def test_prompt_and_messages_items_load() -> None:
    text = "\n".join(
        [
            '{"id": "a", "prompt": "2+2?", "reference": "4", "tags": ["math"]}',
            "",
            '{"id": "b", "messages": [{"role": "system", "content": "Be terse."},'
            ' {"role": "user", "content": "Capital of France?"}], "rubric": "One word."}',
            '{"id": "c", "prompt": "Give JSON", "reference": {"type": "object"}}',
        ]
    )
    items = load_golden_set(text)
    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[0].conversation() == ({"role": "user", "content": "2+2?"},)
    assert items[1].exchange("Paris").question == "Capital of France?"
    assert items[1].rubric == "One word."
    assert items[2].reference == {"type": "object"}


@pytest.mark.parametrize(
    ("text", "needs_reference", "error"),
    [
        ("", False, "no items"),
        ('{"id": "a", "prompt": "x"}\nnot json', False, "line 2: not JSON"),
        ('{"prompt": "x"}', False, "line 1: id: Field required"),
        ('{"id": "a"}', False, "line 1: item: give exactly one of messages or prompt"),
        ('{"id": "a", "prompt": "x", "messages": [{"role": "user", "content": "y"}]}', False, "exactly one"),
        ('{"id": "a", "messages": [{"role": "robot", "content": "y"}]}', False, "line 1: messages.0.role"),
        ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}', False, "line 2: duplicate id 'a'"),
        ('{"id": "a", "prompt": "x"}', True, "line 1: item 'a' has no reference"),
    ],
)
def test_errors_name_the_line(text: str, needs_reference: bool, error: str) -> None:
    with pytest.raises(GoldenSetError) as raised:
        load_golden_set(text, needs_reference=needs_reference)
    assert error in str(raised.value)
