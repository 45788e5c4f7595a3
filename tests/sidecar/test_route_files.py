"""Route templates for the sidecar from OpenAPI documents and plain routes files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ouro_obs.asgi.routes import OpenAPIRouteResolver
from ouro_obs.config import ConfigError


def openapi(**fields: Any) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, **fields}


def test_server_url_variables_take_their_defaults_in_the_base_path() -> None:
    document = openapi(
        servers=[
            {
                "url": "{scheme}://api.example.com/{version}/",
                "variables": {"scheme": {"default": "https"}, "version": {"default": "v2"}},
            }
        ],
        paths={"/users/{user_id}": {}},
    )
    resolver = OpenAPIRouteResolver.from_openapi(document)
    assert resolver.match("/v2/users/42") == "/v2/users/{user_id}"
    assert resolver.match("/users/42") is None


def test_a_path_item_with_its_own_servers_uses_those_instead() -> None:
    document = openapi(
        servers=[{"url": "/api"}],
        paths={"/orders": {}, "/files/{name}": {"servers": [{"url": "https://cdn.example.com/"}]}},
    )
    assert OpenAPIRouteResolver.from_openapi(document).templates == ("/api/orders", "/files/{name}")


def test_every_server_base_path_is_matched() -> None:
    document = openapi(servers=[{"url": "/v1"}, {"url": "/v2"}], paths={"/ping": {}})
    resolver = OpenAPIRouteResolver.from_openapi(document)
    assert {resolver.match("/v1/ping"), resolver.match("/v2/ping")} == {"/v1/ping", "/v2/ping"}


def test_server_paths_can_be_ignored() -> None:
    document = openapi(servers=[{"url": "/api"}], paths={"/ping": {}})
    resolver = OpenAPIRouteResolver.from_openapi(document, server_paths=False)
    assert resolver.templates == ("/ping",)


def test_swagger_2_base_path_prefixes_the_paths() -> None:
    document = {"swagger": "2.0", "basePath": "/shop/", "paths": {"/items/{id}": {}}}
    assert OpenAPIRouteResolver.from_openapi(document).match("/shop/items/9") == "/shop/items/{id}"


def test_specification_extensions_are_not_routes() -> None:
    document = openapi(paths={"x-internal": {"note": 1}, "/ping": {}})
    assert OpenAPIRouteResolver.from_openapi(document).templates == ("/ping",)


def test_a_yaml_document_is_read(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text("openapi: 3.0.3\npaths:\n  /users/{id}:\n    get: {}\n  /users/me: {}\n")
    resolver = OpenAPIRouteResolver.from_openapi_file(path)
    assert (resolver.match("/users/me"), resolver.match("/users/7")) == ("/users/me", "/users/{id}")


def test_a_routes_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text("# orders service\n\n/orders/{order_id}   # one order\n/orders\n")
    resolver = OpenAPIRouteResolver.from_routes_file(path)
    assert resolver.templates == ("/orders", "/orders/{order_id}")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("api.json", '{"openapi": "3.0.0",\n "paths": [}', "api.json:2:12: not valid JSON"),
        ("api.yaml", "openapi: 3.0.0\npaths: [1, 2", "api.yaml:2:"),
        ("api.json", '{"openapi": "3.0.0"}', "'paths' is missing"),
        ("api.json", '{"openapi": "3.0.0", "paths": {}}', "'paths' lists no routes"),
        (
            "api.json",
            json.dumps(openapi(servers=[{"url": "/{base}"}], paths={"/a": {}})),
            "servers[0].variables.base.default is missing",
        ),
        (
            "api.json",
            json.dumps(openapi(paths={"users/{id}": {}})),
            "paths.users/{id}: route template 'users/{id}' must start with '/'",
        ),
    ],
)
def test_a_bad_openapi_document_names_the_file_and_the_field(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        OpenAPIRouteResolver.from_openapi_file(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_a_bad_routes_file_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text("/ok\n/users/{id\n")
    with pytest.raises(ConfigError, match=r"routes\.txt:2: route template '/users/\{id'"):
        OpenAPIRouteResolver.from_routes_file(path)


def test_an_empty_routes_file_says_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"one per line, e\.g\. /users/\{user_id\}"):
        OpenAPIRouteResolver.from_routes_file(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.json: cannot read"):
        OpenAPIRouteResolver.from_openapi_file(tmp_path / "nothing.json")
