"""jsonSchema: the answer is JSON (bare or in a ``` fence) that the item's reference schema accepts.

A subset of JSON Schema (draft 2020-12 keywords for types, objects, arrays, strings, numbers, enum,
const and the anyOf/allOf/oneOf combinators) is checked here rather than pulling in a dependency; a
schema using a keyword outside it is an "error" verdict, so an answer never passes a check we skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from llmrollout.eval._types import Exchange, Score

ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "examples", "$comment"})
SUPPORTED = ANNOTATIONS | {
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "anyOf",
    "allOf",
    "oneOf",
}
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


class UnsupportedSchemaError(ValueError):
    pass


def _is_type(value: Any, name: str) -> bool:
    # bool is an int in Python but not a number in JSON Schema.
    match name:
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "null":
            return value is None
        case "integer":
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
    raise UnsupportedSchemaError(f"unknown type {name!r}")


def violations(value: Any, schema: Any, path: str = "$") -> Iterator[str]:
    """Every way `value` breaks `schema`; empty when it conforms. Raises UnsupportedSchemaError."""
    if schema is True or schema == {}:
        return
    if schema is False:
        yield f"{path}: no value is allowed here"
        return
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(f"{path}: a schema must be an object or a boolean")
    unknown = set(schema) - SUPPORTED
    if unknown:
        raise UnsupportedSchemaError(f"unsupported keyword {', '.join(sorted(unknown))}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            yield f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"
            return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        yield f"{path}: expected {schema['const']!r}"
    if isinstance(value, dict):
        yield from _object(value, schema, path)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{path}: more than {schema['maxItems']} items"
        if "items" in schema:
            for index, item in enumerate(value):
                yield from violations(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield f"{path}: longer than {schema['maxLength']}"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            yield f"{path}: does not match {schema['pattern']!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        yield from _number(value, schema, path)
    yield from _combinators(value, schema, path)


def _object(value: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    for name in schema.get("required", []):
        if name not in value:
            yield f"{path}: missing required {name!r}"
    properties = schema.get("properties", {})
    for name, item in value.items():
        if name in properties:
            yield from violations(item, properties[name], f"{path}.{name}")
        elif "additionalProperties" in schema:
            yield from violations(item, schema["additionalProperties"], f"{path}.{name}")


def _number(value: float, schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: {value} < minimum {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{path}: {value} > maximum {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield f"{path}: {value} <= exclusiveMinimum {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield f"{path}: {value} >= exclusiveMaximum {schema['exclusiveMaximum']}"


def _combinators(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    for sub in schema.get("allOf", []):
        yield from violations(value, sub, path)
    if "anyOf" in schema and not any(not list(violations(value, s, path)) for s in schema["anyOf"]):
        yield f"{path}: matches none of anyOf"
    if "oneOf" in schema:
        matching = sum(1 for s in schema["oneOf"] if not list(violations(value, s, path)))
        if matching != 1:
            yield f"{path}: matches {matching} of oneOf, not exactly one"


def parse_answer(text: str) -> Any:
    """The JSON in an answer: the whole text, else the first ``` fence. Raises ValueError."""
    try:
        return json.loads(text)
    except ValueError:
        fence = _FENCE.search(text)
        if fence is None:
            raise
        return json.loads(fence.group(1))


class JSONSchema:
    name = "jsonSchema"
    needs_reference = True

    def score(self, exchange: Exchange) -> Score:
        schema: Any = exchange.reference
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError:
                return Score("error", None, "the reference is not a JSON schema")
        if not isinstance(schema, dict):
            return Score("error", None, "jsonSchema needs a JSON schema object as the item's reference")
        try:
            value = parse_answer(exchange.response)
        except ValueError:
            return Score.of(0.0, False, "the answer is not JSON")
        try:
            problems = list(violations(value, schema))
        except UnsupportedSchemaError as error:
            return Score("error", None, str(error))
        return Score.of(0.0 if problems else 1.0, not problems, "; ".join(problems[:3]))
