"""Organizations: create, reserved names, require (403 for unknown ones), and deletion
refused while resources remain, cascading the organization's records and identity."""

from __future__ import annotations

import pytest

from api.errors import status_of

from engine import entities as E
from engine.errors import Conflict, InvalidInput, NotFound
from engine.identity.errors import UnknownOrganization
from engine.identity.organizations import OrganizationService
from engine.identity.policies import PolicyService
from engine.identity.service_accounts import ServiceAccountService

from ..identity_keys import public_b64, rsa_key, store  # noqa: F401 (a fixture)


@pytest.fixture
def orgs(store):
    service = OrganizationService(store)
    yield service
    service.close()


def test_an_organization_is_ready_once_created_and_keyed_by_its_own_name(orgs, store):
    org = orgs.create({"name": "acme"})
    assert (org["status"], org["kind"], org["organizationId"]) == ("READY", "Organization", "acme")
    assert org["createdTime"] > 0 and org["id"]
    assert store.get("organization", "acme", "acme")["id"] == org["id"]
    assert orgs.get("acme")["id"] == org["id"]
    assert [o["name"] for o in orgs.list()] == ["acme"]


def test_a_second_organization_of_the_same_name_conflicts(orgs):
    orgs.create({"name": "acme"})
    with pytest.raises(Conflict, match="organization acme already exists"):
        orgs.create({"name": "acme"})


@pytest.mark.parametrize("name", ["v1", "healthz", "docs", "V1", "oidc", "login"])
def test_names_of_the_apis_own_paths_are_reserved(orgs, name):
    with pytest.raises(InvalidInput, match=f"name '{name}' is reserved"):
        orgs.create({"name": name})


@pytest.mark.parametrize("name, message", [
    (None, "name is required"), ("", "name is required"),
    ("a/b", "should start with letter or number"), ("openapi.json", "should start"),
    ("-x", "should start with letter or number"),
])
def test_malformed_names_are_refused(orgs, name, message):
    with pytest.raises(InvalidInput, match=message):
        orgs.create({"name": name})


def test_require_answers_403_for_an_unknown_organization(orgs):
    orgs.create({"name": "acme"})
    assert orgs.require("acme") == "acme"
    with pytest.raises(UnknownOrganization, match="organization 'ghost' does not exist") as caught:
        orgs.require("ghost")
    assert status_of(caught.value) == 403
    for bad in ("", "../acme", "acme/x"):
        with pytest.raises(UnknownOrganization):
            orgs.require(bad)


def test_require_sees_an_organization_created_a_moment_ago(orgs):
    orgs.create({"name": "first"})
    orgs.require("first")  # the cache is running now
    orgs.create({"name": "second"})
    assert orgs.require("second") == "second"


def test_require_refuses_a_deleted_organization(orgs, store):
    orgs.create({"name": "acme"})
    orgs.require("acme")
    orgs.delete("acme")
    fresh = OrganizationService(store)
    try:
        with pytest.raises(UnknownOrganization):
            fresh.require("acme")
    finally:
        fresh.close()


def test_delete_is_refused_while_the_organization_holds_resources(orgs, store):
    orgs.create({"name": "acme"})
    store.add(E.new(E.FUNCTION, "acme", "hello", status=E.READY))
    store.add(E.new(E.SECRET, "acme", "token", status=E.READY))
    with pytest.raises(Conflict, match="organization acme still holds 1 function, 1 secret"):
        orgs.delete("acme")
    assert orgs.get("acme")["status"] == "READY"
    assert store.get(E.FUNCTION, "acme", "hello")


def test_delete_takes_the_records_and_identity_of_the_organization_along(orgs, store):
    orgs.create({"name": "acme"})
    orgs.create({"name": "other"})
    store.add(E.new(E.RUN, "acme", "run-1", status=E.READY))
    store.add(E.new(E.RUN, "other", "run-1", status=E.READY))
    ServiceAccountService(store).create("acme", {"name": "ci", "publicKey": public_b64(rsa_key())})
    PolicyService(store).create("acme", {"name": "p", "rules": [
        {"subjects": ["ci"], "resources": ["*"], "actions": ["*"]}]})
    orgs.delete("acme")
    with pytest.raises(NotFound, match="organization acme not found"):
        orgs.get("acme")
    for kind in (E.RUN, "serviceaccount", "policy"):
        assert store.list(kind, "acme") == []
    assert [r["name"] for r in store.list(E.RUN, "other")] == ["run-1"]
    assert orgs.get("other")


def test_deleting_an_unknown_organization_is_not_found(orgs):
    with pytest.raises(NotFound):
        orgs.delete("ghost")


def test_an_update_replaces_the_tags_and_refuses_another_name(orgs):
    orgs.create({"name": "acme"})
    updated = orgs.update("acme", {"tags": [{"key": "Application", "value": "shop"}]})
    assert updated["tags"] == [{"key": "Application", "value": "shop"}]
    assert orgs.get("acme")["tags"] == updated["tags"]
    with pytest.raises(InvalidInput, match="does not match the path's 'acme'"):
        orgs.update("acme", {"name": "other"})
    with pytest.raises(NotFound, match="organization ghost not found"):
        orgs.update("ghost", {"tags": []})
