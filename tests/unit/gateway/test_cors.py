from meshgate.gateway.cors import CorsPolicy


def test_a_preflight_from_an_allowed_origin_gets_the_allow_headers() -> None:
    policy = CorsPolicy(allow_origins=["https://a.example"], allow_headers=["content-type"])
    headers = dict(policy.preflight("https://a.example", "put", "Content-Type") or [])
    assert headers[b"access-control-allow-origin"] == b"https://a.example"
    assert headers[b"vary"] == b"Origin"
    assert b"PUT" in headers[b"access-control-allow-methods"]
    assert headers[b"access-control-allow-headers"] == b"content-type"
    assert headers[b"access-control-max-age"] == b"600"


def test_a_preflight_from_another_origin_is_refused() -> None:
    policy = CorsPolicy(allow_origins=["https://a.example"])
    assert policy.preflight("https://evil.example", "GET", None) is None


def test_a_preflight_for_a_method_or_header_not_allowed_is_refused() -> None:
    policy = CorsPolicy(allow_methods=["GET"], allow_headers=["x-token"])
    assert policy.preflight("https://a.example", "DELETE", None) is None
    assert policy.preflight("https://a.example", "GET", "x-other") is None


def test_any_origin_without_credentials_answers_a_star() -> None:
    headers = dict(CorsPolicy().response_headers("https://a.example"))
    assert headers[b"access-control-allow-origin"] == b"*"
    assert headers[b"access-control-expose-headers"] == b"X-Request-Id"


def test_credentials_echo_the_origin_instead_of_a_star() -> None:
    headers = dict(CorsPolicy(allow_credentials=True).response_headers("https://a.example"))
    assert headers[b"access-control-allow-origin"] == b"https://a.example"
    assert headers[b"access-control-allow-credentials"] == b"true"


def test_requests_without_origin_get_nothing() -> None:
    assert CorsPolicy().response_headers(None) == []
    assert not CorsPolicy().is_preflight("OPTIONS", None, "GET")
