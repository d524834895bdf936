"""Credentials from the Secret that spec.metrics.prometheus.auth names: each failure names the Secret
and key and why, never a value."""

from __future__ import annotations

import base64

import pytest
from kubernetes.client.exceptions import ApiException

from llmrollout.api import PrometheusAuth
from llmrollout.handlers.credentials import CredentialsError, ReadSecret, prometheus_credentials
from llmrollout.k8s import ConfigDataError

SECRETS = {
    ("prom-auth", "username"): "reader",
    ("prom-auth", "password"): "hunter2-long",
    ("prom-token", "token"): "tok-abc\n",
}


def read(name: str, key: str) -> str:
    if (name, key) not in SECRETS:
        raise ConfigDataError(f"Secret ns/{name} has no key {key!r}")
    return SECRETS[(name, key)]


def auth(**given: object) -> PrometheusAuth:
    return PrometheusAuth.model_validate(given)


def test_no_auth_no_credentials() -> None:
    assert prometheus_credentials(None, "ns", read) is None


def test_basic_auth_reads_username_and_password() -> None:
    found = prometheus_credentials(auth(basicAuthSecretRef={"name": "prom-auth"}), "ns", read)
    assert found is not None
    assert found.authorization == "Basic " + base64.b64encode(b"reader:hunter2-long").decode()
    assert found.source == "basic auth from Secret ns/prom-auth"


def test_a_bearer_token_from_its_key() -> None:
    found = prometheus_credentials(
        auth(bearerTokenSecretRef={"name": "prom-token", "key": "token"}), "ns", read
    )
    assert found is not None and found.authorization == "Bearer tok-abc"
    assert found.source == "bearer token from Secret ns/prom-token key 'token'"


def failing(error: Exception) -> ReadSecret:
    def read_secret(name: str, key: str) -> str:
        raise error

    return read_secret


@pytest.mark.parametrize(
    ("read_secret", "said"),
    [
        (read, "Secret ns/nope has no key 'username'"),
        (
            failing(ConfigDataError("Secret nope not found in namespace ns")),
            "Secret nope not found in namespace ns",
        ),
        (failing(ApiException(status=403, reason="Forbidden")), "reading Secret ns/nope: "),
        (
            failing(UnicodeDecodeError("utf-8", b"\xffhunter2", 0, 1, "bad")),
            "key 'username' is not UTF-8 text",
        ),
        (failing(OSError("connection refused")), "Kubernetes API unreachable"),
    ],
)
def test_failures_name_the_secret(read_secret: ReadSecret, said: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        prometheus_credentials(auth(basicAuthSecretRef={"name": "nope"}), "ns", read_secret)
    assert str(caught.value).startswith("spec.metrics.prometheus.auth: ")
    assert said in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_unusable_token_is_named_not_shown() -> None:
    def read_secret(name: str, key: str) -> str:
        return "bad\ntoken-xyz"

    with pytest.raises(CredentialsError, match="prom-token key 'token' is empty or not printable") as caught:
        prometheus_credentials(
            auth(bearerTokenSecretRef={"name": "prom-token", "key": "token"}), "ns", read_secret
        )
    assert "token-xyz" not in str(caught.value)


@pytest.mark.parametrize(
    "given", [{}, {"basicAuthSecretRef": {"name": "a"}, "bearerTokenSecretRef": {"name": "b", "key": "k"}}]
)
def test_exactly_one_scheme(given: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one of basicAuthSecretRef or bearerTokenSecretRef"):
        PrometheusAuth.model_validate(given)
