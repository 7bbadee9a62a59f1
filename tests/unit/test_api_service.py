"""The API service on the memory store with a recording job queue: validation, collisions,
the status lifecycle and the reconciler's rows for APIs."""

from __future__ import annotations

import pytest

from engine import entities as E
from engine.errors import Conflict, InvalidInput, NotFound
from engine.jobs import SYNC_API, RecordingJobs
from engine.services.apis import ApiService
from engine.scheduler.reconciler import Reconciler
from engine.store import open_store


@pytest.fixture
def store():
    store = open_store("memory://")
    yield store
    store.close()


@pytest.fixture
def jobs():
    return RecordingJobs()


@pytest.fixture
def apis(store, jobs):
    return ApiService(store, jobs)


def settle(apis, jobs):
    for job, key in list(jobs.submitted):
        assert job == SYNC_API
        apis.sync(key)
    jobs.submitted.clear()


def test_create_fills_defaults_and_queues_a_sync(apis, jobs):
    api = apis.create("acme", {"name": "hello", "function": "hello-fn"})
    assert api["status"] == E.CREATING
    assert api["methods"] == ["GET"] and api["uris"] == ["/"] and api["hosts"] == []
    assert api["protocols"] == ["http", "https"] and api["authentication"] == "public"
    assert api["enabled"] is True and api["cors"] is False and api["kind"] == "API"
    assert jobs.submitted == [(SYNC_API, E.key(E.API, "acme", "hello"))]
    settle(apis, jobs)
    assert apis.get("acme", "hello")["status"] == E.READY


def test_methods_are_upper_cased_and_uris_lose_their_trailing_slash(apis):
    api = apis.create("acme", {"name": "a", "function": "f", "methods": ["post", "GET", "POST"],
                               "uris": ["/hello/", "/x"], "hosts": ["API.Example.com"]})
    assert api["methods"] == ["POST", "GET"]
    assert api["uris"] == ["/hello", "/x"]
    assert api["hosts"] == ["api.example.com"]


@pytest.mark.parametrize("spec, field", [
    ({"function": "f"}, "name is required"),
    ({"name": "a b", "function": "f"}, "name 'a b'"),
    ({"name": "a"}, "function is required"),
    ({"name": "a", "function": "no/slash"}, "function 'no/slash'"),
    ({"name": "a", "function": "f", "methods": ["FETCH"]}, "methods: 'FETCH'"),
    ({"name": "a", "function": "f", "methods": "GET"}, "methods must be a list"),
    ({"name": "a", "function": "f", "uris": ["hello"]}, "uris: 'hello'"),
    ({"name": "a", "function": "f", "uris": ["/a//b"]}, "uris: '/a//b'"),
    ({"name": "a", "function": "f", "uris": ["/a?b=1"]}, "uris: '/a?b=1'"),
    ({"name": "a", "function": "f", "hosts": ["bad_host!"]}, "hosts: 'bad_host!'"),
    ({"name": "a", "function": "f", "protocols": ["ftp"]}, "protocols: 'ftp'"),
    ({"name": "a", "function": "f", "authentication": "basic"},
     "authentication basic is not supported: use public or bearer"),
    ({"name": "a", "function": "f", "authentication": "magic"}, "authentication 'magic'"),
    ({"name": "a", "function": "f", "enabled": "yes"}, "enabled must be true or false"),
    ({"name": "a", "function": "f", "cors": 1}, "cors must be true or false"),
    ({"name": "a", "function": "f", "tls": "../x"}, "tls '../x'"),
])
def test_bad_fields_are_named_and_nothing_is_stored(apis, store, jobs, spec, field):
    with pytest.raises(InvalidInput) as exc:
        apis.create("acme", spec)
    assert field in exc.value.message
    assert store.list(E.API) == [] and jobs.submitted == []


def test_a_taken_name_conflicts(apis):
    apis.create("acme", {"name": "a", "function": "f", "uris": ["/one"]})
    with pytest.raises(Conflict):
        apis.create("acme", {"name": "a", "function": "f", "uris": ["/two"]})


def test_a_colliding_route_conflicts_naming_the_other_api(apis, store):
    apis.create("acme", {"name": "first", "function": "f", "uris": ["/hello"],
                         "methods": ["GET", "POST"]})
    with pytest.raises(Conflict) as exc:
        apis.create("acme", {"name": "second", "function": "g", "uris": ["/hello/"],
                             "methods": ["POST"]})
    assert "api first" in exc.value.message and "POST /hello" in exc.value.message
    assert [a["name"] for a in store.list(E.API)] == ["first"]


def test_routes_that_differ_in_method_org_or_host_do_not_collide(apis, store):
    apis.create("acme", {"name": "get", "function": "f", "uris": ["/hello"]})
    apis.create("acme", {"name": "post", "function": "f", "uris": ["/hello"],
                         "methods": ["POST"]})
    apis.create("other", {"name": "get", "function": "f", "uris": ["/hello"]})
    apis.create("acme", {"name": "hosted", "function": "f", "uris": ["/hello"],
                         "hosts": ["a.example.com"]})
    # all four were stored: none of them collided with another
    assert sorted((a["organizationId"], a["name"]) for a in store.list(E.API)) == [
        ("acme", "get"), ("acme", "hosted"), ("acme", "post"), ("other", "get")]


def test_hosts_collide_across_organizations_without_naming_the_other(apis):
    apis.create("acme", {"name": "mine", "function": "f", "hosts": ["shop.example.com"]})
    with pytest.raises(Conflict) as exc:
        apis.create("other", {"name": "theirs", "function": "f",
                              "hosts": ["shop.example.com"]})
    assert "another organization" in exc.value.message and "mine" not in exc.value.message


def test_update_replaces_given_fields_and_keeps_the_rest(apis, jobs):
    apis.create("acme", {"name": "a", "function": "f", "uris": ["/a"], "cors": True})
    settle(apis, jobs)
    api = apis.update("acme", "a", {"function": "g"})
    assert api["status"] == E.UPDATING and api["function"] == "g"
    assert api["uris"] == ["/a"] and api["cors"] is True
    settle(apis, jobs)
    assert apis.get("acme", "a")["status"] == E.READY


def test_update_into_a_collision_conflicts_and_keeps_the_stored_api(apis, jobs):
    apis.create("acme", {"name": "a", "function": "f", "uris": ["/a"]})
    apis.create("acme", {"name": "b", "function": "f", "uris": ["/b"]})
    settle(apis, jobs)
    with pytest.raises(Conflict):
        apis.update("acme", "b", {"uris": ["/a"]})
    assert apis.get("acme", "b")["uris"] == ["/b"] and apis.get("acme", "b")["status"] == E.READY
    with pytest.raises(InvalidInput):
        apis.update("acme", "b", {"name": "other"})


def test_delete_answers_deleting_then_the_sync_removes_it(apis, jobs):
    apis.create("acme", {"name": "a", "function": "f"})
    settle(apis, jobs)
    api = apis.delete("acme", "a")
    assert api["status"] == E.DELETING and api["delete"] is True
    settle(apis, jobs)
    with pytest.raises(NotFound):
        apis.get("acme", "a")
    with pytest.raises(NotFound):
        apis.delete("acme", "a")


def test_a_deleting_api_no_longer_blocks_its_routes(apis):
    apis.create("acme", {"name": "a", "function": "f"})
    with pytest.raises(Conflict, match="api a"):  # the same route, while a is live
        apis.create("acme", {"name": "early", "function": "f"})
    apis.delete("acme", "a")
    b = apis.create("acme", {"name": "b", "function": "f"})
    assert b["uris"] == ["/"] and apis.get("acme", "a")["status"] == E.DELETING


def test_list_filters_by_function(apis):
    apis.create("acme", {"name": "a", "function": "f", "uris": ["/a"]})
    apis.create("acme", {"name": "b", "function": "g", "uris": ["/b"]})
    assert [a["name"] for a in apis.list("acme", function="g")] == ["b"]
    assert [a["name"] for a in apis.list("acme")] == ["a", "b"]


def test_the_reconciler_resubmits_a_stuck_api(apis, store, jobs):
    api = apis.create("acme", {"name": "a", "function": "f"})
    jobs.submitted.clear()  # the job was lost
    reconciler = Reconciler(store, jobs, stuck_seconds=5)
    assert reconciler.reconcile_once(now=api["modifiedTime"] + 1) == {}
    moved = reconciler.reconcile_once(now=api["modifiedTime"] + 10)
    assert moved == {f"resubmitted_{SYNC_API}": 1}
    settle(apis, jobs)
    assert apis.get("acme", "a")["status"] == E.READY
