"""The request gate: public paths, 401 without a valid token, 403 for an unknown
organization or a missing policy, the principal's own org by default, cross-org
requests only through a global policy, and the loudly logged switch that turns it off."""

from __future__ import annotations

import logging

import pytest

from api.errors import status_of

from engine.identity.access import AccessControl
from engine.identity.bootstrap import bootstrap
from engine.identity.errors import PermissionDenied, Unauthenticated, UnknownOrganization
from engine.identity.principal import Principal
from engine.identity.service_accounts import issue_token

from ..identity_keys import private_pem, public_b64, rsa_key, store  # noqa: F401 (a fixture)


@pytest.fixture
def gate(store):
    gate = AccessControl(store)
    yield gate
    gate.close()


@pytest.fixture
def admin(store):
    """The bootstrap admin's Authorization header."""
    key = bootstrap(store).private_key
    return f"Bearer {issue_token(key, 'default', 'admin')}"


@pytest.fixture
def tenant(gate):
    """Org acme with service account ``ci`` allowed to read functions; its header."""
    gate.organizations.create({"name": "acme"})
    gate.service_accounts.create("acme", {"name": "ci", "publicKey": public_b64(rsa_key())})
    gate.policies.create("acme", {"name": "read", "rules": [
        {"subjects": ["ci"], "resources": ["function"], "actions": ["get"]}]})
    assert gate.authorizer.wait_until(
        lambda: gate.authorizer.check(Principal("acme", "ci"), "function", "get").allowed, 10)
    return f"Bearer {issue_token(private_pem(rsa_key()), 'acme', 'ci')}"


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/docs", "/docs/swagger.css",
                                  "/v1/event/ingest", "/v1/event/ingest/ticker"])
def test_public_paths_need_no_credentials(gate, path):
    assert gate.check("GET", path, None).principal is None


@pytest.mark.parametrize("header", [None, "", "Basic YTpi", "Bearer nonsense"])
def test_everything_else_needs_a_valid_token(gate, header):
    with pytest.raises(Unauthenticated) as caught:
        gate.check("GET", "/v1/function", header)
    assert status_of(caught.value) == 401


def test_the_principals_own_org_is_the_default(gate, tenant):
    access = gate.check("GET", "/v1/function/hello", tenant)
    assert access.principal == Principal("acme", "ci") and access.org == "acme"


def test_the_policy_decides_the_action_on_the_resource(gate, tenant):
    with pytest.raises(PermissionDenied, match="serviceaccount acme/ci may not create function"):
        gate.check("POST", "/v1/function", tenant)
    with pytest.raises(PermissionDenied, match="may not get secret"):
        gate.check("GET", "/v1/secret", tenant)


def test_paths_without_a_resource_need_only_authentication(gate, tenant):
    assert gate.check("GET", "/v1/version", tenant).org == "acme"


def test_an_unknown_organization_is_403_even_for_the_admin(gate, admin):
    with pytest.raises(UnknownOrganization) as caught:
        gate.check("GET", "/v1/function", admin, org="ghost")
    assert status_of(caught.value) == 403


def test_another_organization_is_closed_without_a_global_policy(gate, tenant, admin):
    # acme's ci names org default in the header: its policy is acme's and not global
    with pytest.raises(PermissionDenied, match="may not get function in organization default"):
        gate.check("GET", "/v1/function", tenant, org="default")
    # the bootstrap admin's policy is global: it may act in acme
    access = gate.check("DELETE", "/v1/secret/x", admin, org="acme")
    assert access.org == "acme" and access.principal.subject == "admin"


def test_turned_off_every_request_passes_and_it_is_said_loudly(store, caplog):
    caplog.set_level(logging.WARNING, logger="dispatch.identity")
    gate = AccessControl(store, enabled=False)
    try:
        assert "auth.DISABLED" in caplog.text
        access = gate.check("DELETE", "/v1/function/x", None, org="acme")
        assert access.org == "acme" and access.principal.kind == "anonymous"
    finally:
        gate.close()
