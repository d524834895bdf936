"""The committed CRD is exactly what the models generate, so the two cannot disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmrollout.api import LLMDeploymentSpec, crd

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "crds/llmdeployments.llmrollout.io.yaml"
CHART_CRD = REPO / "charts/llmrollout/crds/llmdeployments.llmrollout.io.yaml"


def spec_schema(manifest: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    return schema


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == crd.render(), "run `make crds` and commit the result"


def test_chart_carries_the_same_crd() -> None:
    assert CHART_CRD.read_text() == COMMITTED.read_text(), "run `make crds` and commit the result"


def test_every_model_field_is_in_the_schema_and_back() -> None:
    def walk(model: type[Any], schema: dict[str, Any], path: str) -> None:
        fields = {(info.alias or name): info for name, info in model.model_fields.items()}
        assert set(fields) == set(schema["properties"]), path
        required = {alias for alias, info in fields.items() if info.is_required()}
        assert required == set(schema.get("required", [])), path
        for alias, info in fields.items():
            annotation = info.annotation
            nested = getattr(annotation, "model_fields", None)
            if nested is None:
                args = [a for a in getattr(annotation, "__args__", ()) if hasattr(a, "model_fields")]
                annotation = args[0] if args else None
            if annotation is not None and hasattr(annotation, "model_fields"):
                child = schema["properties"][alias]
                walk(annotation, child["items"] if child.get("type") == "array" else child, f"{path}.{alias}")

    walk(LLMDeploymentSpec, spec_schema(yaml.safe_load(COMMITTED.read_text())), "spec")


def test_schema_is_structural() -> None:
    """Kubernetes rejects unions and $refs; every node must say its type."""

    def walk(node: dict[str, Any], path: str) -> None:
        assert not {"anyOf", "oneOf", "$ref", "allOf"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(spec_schema(crd.crd_manifest()), "spec")


def test_printer_columns() -> None:
    columns = crd.crd_manifest()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Phase", "Stable", "Candidate", "Weight", "Step", "Age"]
