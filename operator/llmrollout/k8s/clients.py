"""Building the Kubernetes API client once, from a kubeconfig or the in-cluster service account."""

from __future__ import annotations

from kubernetes import client, config


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """KUBECONFIG (or ~/.kube/config) when present, else the pod's service account."""
    try:
        return config.new_client_from_config(config_file=kubeconfig)
    except config.ConfigException:
        config.load_incluster_config()
        return client.ApiClient()
