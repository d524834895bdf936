"""Building the Kubernetes API client once, from a kubeconfig or the in-cluster service account."""

from __future__ import annotations

from kubernetes import client, config

DEFAULT_CONNECTIONS = 10


def api_client(kubeconfig: str | None = None, connections: int = DEFAULT_CONNECTIONS) -> client.ApiClient:
    """KUBECONFIG (or ~/.kube/config) when present, else the pod's service account. `connections`
    bounds the kept-alive connections: at least as many as threads that call at once, since each call
    beyond the pool opens (and then drops) a TLS connection of its own, a handshake per write."""
    configuration = client.Configuration()
    configuration.connection_pool_maxsize = max(DEFAULT_CONNECTIONS, connections)
    try:
        return config.new_client_from_config(config_file=kubeconfig, client_configuration=configuration)
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
