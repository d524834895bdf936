"""Prometheus credentials from the Secret that spec.metrics.prometheus.auth names.

Read at every window read, off the reconcile thread (in the read pool), so a rotated Secret is used
from the next read on. Messages name the Secret and its key, never a value: they go to status,
Events and logs, which more people may read than the Secret.
"""

from __future__ import annotations

from collections.abc import Callable

import urllib3
from kubernetes.client.exceptions import ApiException

from llmrollout.api import PrometheusAuth
from llmrollout.k8s import ConfigDataError, describe_api_error
from llmrollout.metrics import Credentials

BASIC_AUTH_KEYS = ("username", "password")


class CredentialsError(Exception):
    """The Secret cannot give credentials; the message names it and says why, without its values."""


ReadSecret = Callable[[str, str], str]  # (name, key) -> value: k8s.secret_value in the namespace


def prometheus_credentials(
    auth: PrometheusAuth | None, namespace: str, read_secret: ReadSecret
) -> Credentials | None:
    if auth is None:
        return None
    if auth.basic_auth_secret_ref is not None:
        name = auth.basic_auth_secret_ref.name
        username, password = (_value(read_secret, namespace, name, key) for key in BASIC_AUTH_KEYS)
        return Credentials.basic(username, password, f"basic auth from Secret {namespace}/{name}")
    ref = auth.bearer_token_secret_ref
    assert ref is not None, "PrometheusAuth sets exactly one scheme"
    token = _value(read_secret, namespace, ref.name, ref.key)
    try:
        return Credentials.bearer(token, f"bearer token from Secret {namespace}/{ref.name} key {ref.key!r}")
    except ValueError as error:
        raise CredentialsError(f"spec.metrics.prometheus.auth: {error}") from None


def _value(read_secret: ReadSecret, namespace: str, name: str, key: str) -> str:
    where = "spec.metrics.prometheus.auth"
    try:
        return read_secret(name, key)
    except ConfigDataError as error:
        raise CredentialsError(f"{where}: {error}") from None
    except ApiException as error:
        raise CredentialsError(
            f"{where}: reading Secret {namespace}/{name}: {describe_api_error(error)}"
        ) from None
    except ValueError:
        # binascii and UnicodeDecodeError quote the bytes they choke on: a piece of the secret.
        raise CredentialsError(f"{where}: Secret {namespace}/{name} key {key!r} is not UTF-8 text") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise CredentialsError(
            f"{where}: reading Secret {namespace}/{name}: Kubernetes API unreachable ({type(error).__name__})"
        ) from None
