from kubernetes import client

from llmrollout.k8s.lean import request_headers


def _api(token: str | None) -> client.ApiClient:
    configuration = client.Configuration(host="https://apiserver.example:6443")
    if token is not None:
        configuration.api_key = {"BearerToken": token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
    api = client.ApiClient(configuration)
    api.user_agent = "llmrollout/test"
    api.default_headers["X-Extra"] = "kept"
    return api


def test_headers_carry_the_clients_defaults_user_agent_and_token() -> None:
    headers = request_headers(_api("abc"), **{"Content-Type": "application/json"})
    assert headers == {
        "X-Extra": "kept",
        "User-Agent": "llmrollout/test",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "authorization": "Bearer abc",
    }


def test_a_refreshed_token_is_read_on_the_next_call() -> None:
    api = _api("old")
    assert request_headers(api)["authorization"] == "Bearer old"
    api.configuration.api_key["BearerToken"] = "new"
    assert request_headers(api)["authorization"] == "Bearer new"


def test_no_credentials_send_no_authorization() -> None:
    assert "authorization" not in request_headers(_api(None))
