"""GenAI events from OTLP/HTTP JSON log records, as exchanges for the judge (pure, no I/O).

Instrumentations that capture content emit `gen_ai.client.inference.operation.details` events whose
`gen_ai.input.messages` / `gen_ai.output.messages` attributes hold messages as
`[{"role": ..., "parts": [{"type": "text", "content": ...}]}]` (OpenTelemetry GenAI semantic
conventions), either as structured values or as JSON strings; `gen_ai.system_instructions` holds the
system prompt's parts. Only text parts are judged. Protobuf is not decoded here: a Collector's
`otlphttp` exporter with `encoding: json` forwards any SDK's logs in this form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmrollout.eval._types import Exchange, Message

EVENT = "gen_ai.client.inference.operation.details"
MAX_TEXT = 100_000


def any_value(value: Any) -> Any:
    """An OTLP AnyValue in JSON form as the Python value it stands for."""
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 travels as a string in OTLP JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    return None


def attributes(pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {p["key"]: any_value(p.get("value")) for p in pairs if isinstance(p, dict) and "key" in p}


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    texts = [
        p["content"]
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str)
    ]
    return "\n".join(texts)[:MAX_TEXT]


@dataclass(frozen=True)
class Extracted:
    exchanges: list[tuple[str, Exchange]]
    rejected: int  # GenAI events that could not be judged (no variant, no text)
    reason: str = ""


def exchanges_from_logs(payload: Any, variant_attribute: str) -> Extracted:
    """Exchanges in an ExportLogsServiceRequest (JSON), each with its variant from the record's or the
    resource's `variant_attribute`. Log records other than GenAI operation details are ignored."""
    found: list[tuple[str, Exchange]] = []
    rejected, reason = 0, ""
    resource_logs = payload.get("resourceLogs", []) if isinstance(payload, dict) else []
    for resource_log in resource_logs if isinstance(resource_logs, list) else []:
        resource = attributes((resource_log.get("resource") or {}).get("attributes"))
        for scope_log in resource_log.get("scopeLogs") or []:
            for record in scope_log.get("logRecords") or []:
                attrs = attributes(record.get("attributes"))
                # eventName is the OTLP 1.5 field; older SDKs put the name in the event.name attribute.
                if (record.get("eventName") or attrs.get("event.name")) != EVENT:
                    continue
                variant = attrs.get(variant_attribute, resource.get(variant_attribute))
                conversation: list[Message] = []
                # System instructions are a list of parts, not of messages; _messages parses either.
                system = _text(_messages(attrs.get("gen_ai.system_instructions")))
                if system:
                    conversation.append(Message(role="system", content=system))
                for message in _messages(attrs.get("gen_ai.input.messages")):
                    text = _text(message.get("parts"))
                    if text:
                        conversation.append(Message(role=str(message.get("role", "user")), content=text))
                answer = "\n".join(
                    _text(m.get("parts")) for m in _messages(attrs.get("gen_ai.output.messages"))
                ).strip()
                if not isinstance(variant, str) or not variant:
                    rejected, reason = rejected + 1, f"no {variant_attribute} attribute on record or resource"
                elif not conversation or not answer:
                    rejected, reason = (
                        rejected + 1,
                        "no text in gen_ai.input.messages or gen_ai.output.messages",
                    )
                else:
                    found.append((variant, Exchange(tuple(conversation), answer)))
    return Extracted(found, rejected, reason)
