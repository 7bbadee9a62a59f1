"""The gateway's route table on the memory store: host and org routing, trailing
slashes, 405 with the allowed methods, CORS preflights, and watch-fed changes."""

from __future__ import annotations

import time

import pytest

from api.errors import status_of

from engine import entities as E
from engine.jobs import RecordingJobs
from engine.errors import MethodNotAllowed
from engine.services.routes import RouteTable, clean_host
from engine.services.apis import ApiService
from engine.store import open_store


@pytest.fixture
def store():
    store = open_store("memory://")
    yield store
    store.close()


@pytest.fixture
def apis(store):
    jobs = RecordingJobs()
    service = ApiService(store, jobs)

    def create(org, **spec):
        api = service.create(org, spec)
        service.sync(E.key_of(api))
        return api

    service.create_ready = create
    return service


@pytest.fixture
def routes(store):
    table = RouteTable(store)
    yield table
    table.close()


def eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, MethodNotAllowed):  # the watch has not delivered yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def name_of(match):
    return match and (match.org, match.api["name"], match.uri)


def test_org_paths_route_to_the_org_api(apis, routes):
    apis.create_ready("acme", name="hello", function="f", uris=["/hello"])
    apis.create_ready("other", name="hello", function="f", uris=["/hello"])

    def check():
        assert name_of(routes.match("gw", "/acme/hello", "GET")) == ("acme", "hello", "/hello")
        assert name_of(routes.match("gw", "/other/hello/", "GET")) == ("other", "hello", "/hello")
    eventually(check)
    assert routes.match("gw", "/acme/hello/more", "GET") is None
    assert routes.match("gw", "/nobody/hello", "GET") is None
    assert routes.match("gw", "/hello", "GET") is None


def test_the_root_uri_is_the_org_path(apis, routes):
    apis.create_ready("acme", name="root", function="f")
    eventually(lambda: assert_match(routes.match("gw", "/acme", "GET"), "root"))
    assert_match(routes.match("gw", "/acme/", "GET"), "root")


def assert_match(match, name):
    assert match is not None and match.api["name"] == name


def test_hosts_route_paths_directly_and_only_on_that_host(apis, routes):
    apis.create_ready("acme", name="shop", function="f", uris=["/cart"],
                      hosts=["shop.example.com"])
    eventually(lambda: assert_match(routes.match("Shop.Example.com:8080", "/cart", "GET"),
                                    "shop"))
    assert routes.match("shop.example.com", "/cart", "GET").org == "acme"
    assert routes.is_api_host("shop.example.com:80") and not routes.is_api_host("gw")
    # an API with hosts is not on the org's paths, nor on other hosts
    assert routes.match("gw", "/acme/cart", "GET") is None
    assert routes.match("other.example.com", "/cart", "GET") is None


def test_an_api_host_still_reaches_org_paths_it_does_not_serve(apis, routes):
    apis.create_ready("acme", name="shop", function="f", uris=["/cart"],
                      hosts=["shop.example.com"])
    apis.create_ready("acme", name="plain", function="f", uris=["/plain"])
    eventually(lambda: assert_match(routes.match("shop.example.com", "/acme/plain", "GET"),
                                    "plain"))


def test_a_known_path_with_another_method_is_405_naming_the_allowed(apis, routes):
    apis.create_ready("acme", name="get", function="f", uris=["/x"])
    apis.create_ready("acme", name="post", function="f", uris=["/x"], methods=["POST", "PUT"])
    eventually(lambda: assert_match(routes.match("gw", "/acme/x", "POST"), "post"))
    eventually(lambda: assert_match(routes.match("gw", "/acme/x", "GET"), "get"))
    with pytest.raises(MethodNotAllowed) as exc:
        routes.match("gw", "/acme/x", "DELETE")
    assert exc.value.allowed == ["GET", "POST", "PUT"] and status_of(exc.value) == 405


def test_options_matches_only_cors_apis(apis, routes):
    apis.create_ready("acme", name="open", function="f", uris=["/open"], cors=True)
    apis.create_ready("acme", name="closed", function="f", uris=["/closed"])
    eventually(lambda: assert_match(routes.match("gw", "/acme/open", "OPTIONS"), "open"))
    eventually(lambda: assert_match(routes.match("gw", "/acme/closed", "GET"), "closed"))
    with pytest.raises(MethodNotAllowed):
        routes.match("gw", "/acme/closed", "OPTIONS")


def test_changes_reach_the_table_through_the_watch(apis, routes, store):
    apis.create_ready("acme", name="a", function="f", uris=["/a"])
    eventually(lambda: assert_match(routes.match("gw", "/acme/a", "GET"), "a"))
    # disabled: gone
    apis.update("acme", "a", {"enabled": False})
    eventually(lambda: routes.match("gw", "/acme/a", "GET") is None or fail())
    # re-targeted and enabled again: routed while UPDATING, with the new function
    apis.update("acme", "a", {"enabled": True, "function": "g", "uris": ["/b"]})
    eventually(lambda: assert_match(routes.match("gw", "/acme/b", "GET"), "a"))
    assert routes.match("gw", "/acme/b", "GET").api["function"] == "g"
    assert routes.match("gw", "/acme/a", "GET") is None
    # deleting: gone at once, before the sync removes it
    apis.delete("acme", "a")
    eventually(lambda: routes.match("gw", "/acme/b", "GET") is None or fail())


def test_a_creating_api_is_not_routed_until_synced(apis, routes, store):
    api = apis.create("acme", {"name": "a", "function": "f", "uris": ["/a"]})
    time.sleep(0.2)
    assert routes.match("gw", "/acme/a", "GET") is None
    apis.sync(E.key_of(api))
    eventually(lambda: assert_match(routes.match("gw", "/acme/a", "GET"), "a"))


def fail():
    raise AssertionError("not yet")


@pytest.mark.parametrize("header, host", [("a.example.com:8080", "a.example.com"),
                                          ("A.EXAMPLE.COM", "a.example.com"),
                                          ("[::1]:80", "[::1]"), ("", ""), (None, "")])
def test_clean_host_strips_the_port(header, host):
    assert clean_host(header) == host
