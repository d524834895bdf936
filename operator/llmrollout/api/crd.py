"""The LLMDeployment CustomResourceDefinition, generated from the pydantic models.

The models are the one source of truth: `python -m llmrollout.api.crd` writes the CRD that
`crds/` and the Helm chart carry, and a unit test fails when the committed file has drifted.
Pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3 subset, so the
conversion inlines $refs, turns Optional into a plain type, and drops what the apiserver rejects.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from llmrollout.api import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from llmrollout.api.durations import parse_duration
from llmrollout.api.spec import MIN_INTERVAL, LLMDeploymentSpec, interval_floor
from llmrollout.api.status import LLMDeploymentStatus

_DROPPED_KEYS = {"title", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**target, **extra}, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [branch for branch in any_of if branch.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {any_of}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return _structural({**non_null[0], **rest}, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            result[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020-12 carries the bound here; OpenAPI v3.0 a boolean beside minimum/maximum.
            result["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            result[key] = True
        else:
            result[key] = _structural(value, defs)
    if result.get("type") == "object" and "properties" in result:
        result.setdefault("additionalProperties", None)
        if result["additionalProperties"] in (None, False):
            del result["additionalProperties"]
    return result


def _schema_of(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_structural(schema, schema.get("$defs", {})))


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(item) for item in node]
    return node


def _with_floor(node: Any, floor: str) -> Any:
    """`node` with every interval-floor rule moved to `floor`."""
    if isinstance(node, list):
        default = interval_floor()
        return [interval_floor(floor) if item == default else _with_floor(item, floor) for item in node]
    if isinstance(node, dict):
        return {key: _with_floor(value, floor) for key, value in node.items()}
    return node


def spec_schema(min_interval: str = MIN_INTERVAL) -> dict[str, Any]:
    parse_duration(min_interval)  # a typo must fail here, not as a CRD the apiserver refuses
    schema = _schema_of(LLMDeploymentSpec)
    return schema if min_interval == MIN_INTERVAL else dict(_with_floor(schema, min_interval))


def status_schema() -> dict[str, Any]:
    # Only the operator writes status; apiserver-side defaults there would only hide bugs.
    schema: dict[str, Any] = _without_defaults(_schema_of(LLMDeploymentStatus))
    # Free-form blocks the operator builds (tests' state, the plan, the gate's result): kept whole, not
    # pruned to the declared (no) properties.
    for free_form in ("analysis", "plan", "evaluation"):
        description = schema["properties"][free_form].get("description")
        schema["properties"][free_form] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if description:
            schema["properties"][free_form]["description"] = description
    # Kopf records its own progress here when a handler fails, so unknown keys must survive.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def crd_manifest(min_interval: str = MIN_INTERVAL) -> dict[str, Any]:
    printer_columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stable", "type": "string", "jsonPath": ".status.stable"},
        {"name": "Candidate", "type": "string", "jsonPath": ".status.candidate"},
        {
            "name": "Weight",
            "type": "integer",
            "jsonPath": ".status.candidateWeight",
            "description": "Candidate's traffic share in percent",
        },
        {"name": "Step", "type": "integer", "jsonPath": ".status.step"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": ["all", "llmrollout"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Closed-loop rollout of LLM model and prompt versions.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(min_interval),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render(min_interval: str = MIN_INTERVAL) -> str:
    header = "# Generated by `python -m llmrollout.api.crd` from llmrollout.api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd_manifest(min_interval), sort_keys=False, width=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmrollout.api.crd", description=__doc__)
    parser.add_argument(
        "--min-interval",
        default=MIN_INTERVAL,
        help=f"floor for strategy.interval and analysis.lookInterval (default {MIN_INTERVAL});"
        " lower it only on test clusters",
    )
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.min_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
