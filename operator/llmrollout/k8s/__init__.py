"""The only code that talks to the Kubernetes API (besides Kopf itself)."""

from llmrollout.k8s.clients import api_client
from llmrollout.k8s.configdata import ConfigDataError, config_map_value, secret_value
from llmrollout.k8s.errors import describe_api_error
from llmrollout.k8s.leases import LeaseRef
from llmrollout.k8s.llmdeployments import (
    ACTION_ANNOTATION,
    ACTIONS,
    LLMDeploymentNotFoundError,
    StaleObjectError,
    clear_action,
    get_llmdeployment,
    list_llmdeployments,
    request_action,
    set_paused,
    write_status,
)
from llmrollout.k8s.services import ServiceWatch, missing_services

__all__ = [
    "ACTIONS",
    "ACTION_ANNOTATION",
    "ConfigDataError",
    "LLMDeploymentNotFoundError",
    "LeaseRef",
    "ServiceWatch",
    "StaleObjectError",
    "api_client",
    "clear_action",
    "config_map_value",
    "describe_api_error",
    "get_llmdeployment",
    "list_llmdeployments",
    "missing_services",
    "request_action",
    "secret_value",
    "set_paused",
    "write_status",
]
