"""Policies and the casbin authorizer: validation, decisions (wildcards, global
policies, isolation between organizations), request mapping, and reload on change in
every process that shares the store (two authorizers on one SQLite file, and on etcd)."""

from __future__ import annotations

import logging

import pytest

from api.errors import status_of

from engine.errors import Conflict, InvalidInput, NotFound
from engine.identity.authorizer import Authorizer, action_for, resource_for
from engine.identity.errors import PermissionDenied
from engine.identity.policies import PolicyService
from engine.identity.principal import Principal
from engine.store import open_store

from ..identity_keys import store  # noqa: F401 (the fixture)

WAIT = 10  # seconds a watch may take to bring a change (a ceiling: no timing is asserted)


def rule(subjects, resources, actions):
    return {"subjects": subjects, "resources": resources, "actions": actions}


@pytest.fixture
def policies(store):
    return PolicyService(store)


@pytest.fixture
def authorizer(store):
    authorizer = Authorizer(store)
    yield authorizer
    authorizer.close()


def allowed(authorizer, principal, resource, action, org=None) -> bool:
    return authorizer.check(principal, resource, action, org).allowed


def eventually(authorizer, condition) -> None:
    assert authorizer.wait_until(condition, WAIT), "the authorizer never saw the change"


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("rules, message", [
    (None, "rules is required"),
    ([], "rules is required"),
    (["x"], r"rules\[0\] must be an object"),
    ([rule([], ["function"], ["get"])], r"rules\[0\].subjects is required"),
    ([rule(["a"], ["function"], ["get"]), rule(["a"], ["functon"], ["get"])],
     r"rules\[1\].resources: 'functon' is not one of function, run"),
    ([rule(["a"], ["function"], ["read"])], r"rules\[0\].actions: 'read' is not one of get, "
                                            r"create, update, delete, \*"),
    ([rule(["a"], ["function"], "get")], r"rules\[0\].actions is required: a non-empty list"),
    ([rule(["a"], ["function"], [""])], r"rules\[0\].actions: every entry must be a non-empty"),
    ([rule(["a,b"], ["function"], ["get"])], r"rules\[0\].subjects: 'a,b' is not a subject"),
    ([rule(["user:"], ["function"], ["get"])], r"rules\[0\].subjects: 'user:' is not a subject"),
    ([rule(["the admin"], ["function"], ["get"])], r"'the admin' is not a subject: a service"),
    ([rule(["@example.com"], ["function"], ["get"])], r"'@example.com' is not a subject"),
    ([{**rule(["a"], ["function"], ["get"]), "effect": "deny"}],
     r"rules\[0\] has unknown fields: effect"),
])
def test_malformed_policies_are_refused_naming_the_rule_and_value(policies, rules, message):
    with pytest.raises(InvalidInput, match=message):
        policies.create("acme", {"name": "p", "rules": rules})
    with pytest.raises(NotFound):
        policies.get("acme", "p")


def test_global_must_be_a_boolean(policies):
    with pytest.raises(InvalidInput, match="global must be true or false"):
        policies.create("acme", {"name": "p", "global": "yes",
                                 "rules": [rule(["a"], ["*"], ["*"])]})


def test_subjects_name_service_accounts_users_by_email_or_sub_and_anyone(policies):
    subjects = ["ci", "alice@example.com", "user:0b1c-77", "*"]
    policy = policies.create("acme", {"name": "p", "rules": [rule(subjects, ["*"], ["get"])]})
    assert policy["rules"][0]["subjects"] == subjects


def test_resources_are_stored_in_their_canonical_spelling(policies):
    policy = policies.create("acme", {"name": "p", "rules": [
        rule(["a", "a"], ["runs", "functions", "subscription", "iam"], ["get", "*"])]})
    assert policy["rules"] == [rule(["a"], ["run", "function", "subscription", "iam"], ["get", "*"])]
    assert policy["global"] is False and policy["status"] == "READY"


def test_policy_crud(policies):
    policies.create("acme", {"name": "p", "rules": [rule(["a"], ["*"], ["get"])]})
    with pytest.raises(Conflict, match="policy p already exists"):
        policies.create("acme", {"name": "p", "rules": [rule(["a"], ["*"], ["get"])]})
    updated = policies.update("acme", "p", {"rules": [rule(["b"], ["secret"], ["delete"])],
                                            "global": True})
    assert updated["global"] is True and updated["rules"][0]["subjects"] == ["b"]
    assert [p["name"] for p in policies.list("acme")] == ["p"] and policies.list("other") == []
    policies.delete("acme", "p")
    with pytest.raises(NotFound, match="policy p not found"):
        policies.delete("acme", "p")


# ---- mapping requests ------------------------------------------------------------------


@pytest.mark.parametrize("method, action", [
    ("GET", "get"), ("HEAD", "get"), ("POST", "create"), ("PUT", "update"),
    ("PATCH", "update"), ("DELETE", "delete"), ("get", "get"), ("TRACE", None)])
def test_the_action_comes_from_the_method(method, action):
    assert action_for(method) == action


@pytest.mark.parametrize("path, resource", [
    ("/v1/function", "function"), ("/v1/function/hello", "function"),
    ("/v1/runs", "run"), ("/v1/runs/abc", "run"), ("/v1/secret/", "secret"),
    ("/v1/image/x", "image"), ("/v1/baseimage", "baseimage"), ("/v1/api/a", "api"),
    ("/v1/event/", "event"), ("/v1/event", "event"),
    ("/v1/event/subscriptions", "subscription"), ("/v1/event/subscriptions/s", "subscription"),
    ("/v1/event/drivers/d", "driver"), ("/v1/event/drivertypes", "drivertype"),
    ("/v1/iam/policy", "iam"), ("/v1/iam/serviceaccount/x", "iam"),
    ("/v1/iam/organization", "iam"),
    ("/healthz", None), ("/v1", None), ("/v1/version", None), ("/docs", None),
    ("/openapi.json", None), ("/acme/hello", None), ("/v1/event/ingest", None),
    ("/v1/event/ingest/driver", None),
])
def test_the_resource_comes_from_the_path(path, resource):
    assert resource_for(path) == resource


# ---- decisions -------------------------------------------------------------------------


ALICE = Principal("acme", "alice@example.com", "user")
CI = Principal("acme", "ci")


def test_nothing_is_allowed_without_a_policy(authorizer):
    assert not allowed(authorizer, CI, "function", "get")


def test_a_rule_allows_its_subjects_actions_on_its_resources(policies, authorizer):
    policies.create("acme", {"name": "dev", "rules": [
        rule(["ci", "alice@example.com"], ["function", "run"], ["get", "create"])]})
    eventually(authorizer, lambda: allowed(authorizer, CI, "function", "create"))
    for principal in (CI, ALICE):
        for resource in ("function", "run"):
            for action in ("get", "create"):
                assert allowed(authorizer, principal, resource, action)
        assert not allowed(authorizer, principal, "function", "delete")
        assert not allowed(authorizer, principal, "secret", "get")
    assert not allowed(authorizer, Principal("acme", "bob"), "function", "get")


def test_wildcards_stand_for_any_resource_action_or_subject(policies, authorizer):
    policies.create("acme", {"name": "p", "rules": [
        rule(["ci"], ["*"], ["get"]), rule(["alice@example.com"], ["secret"], ["*"]),
        rule(["*"], ["function"], ["get"])]})
    eventually(authorizer, lambda: allowed(authorizer, CI, "iam", "get"))
    assert allowed(authorizer, CI, "secret", "get") and not allowed(authorizer, CI, "secret", "delete")
    assert allowed(authorizer, ALICE, "secret", "delete") and not allowed(authorizer, ALICE, "run", "get")
    assert allowed(authorizer, Principal("acme", "anyone"), "function", "get")
    assert not allowed(authorizer, Principal("other", "anyone"), "function", "get", "acme")


def test_a_policy_never_reaches_into_another_organization(policies, authorizer):
    policies.create("acme", {"name": "admin", "rules": [rule(["admin"], ["*"], ["*"])]})
    eventually(authorizer, lambda: allowed(authorizer, Principal("acme", "admin"), "secret", "get"))
    acme_admin, other_admin = Principal("acme", "admin"), Principal("other", "admin")
    # acme's admin in org "other": no policy of acme is global
    assert not allowed(authorizer, acme_admin, "secret", "get", org="other")
    # other's principal of the same name, in its own org or in acme: acme's policy
    # speaks for acme's principals only
    assert not allowed(authorizer, other_admin, "secret", "get")
    assert not allowed(authorizer, other_admin, "secret", "get", org="acme")


def test_a_global_policy_lets_its_orgs_principals_act_in_every_org(policies, authorizer):
    policies.create("acme", {"name": "root", "global": True,
                             "rules": [rule(["admin"], ["*"], ["*"])]})
    admin = Principal("acme", "admin")
    eventually(authorizer, lambda: allowed(authorizer, admin, "function", "delete", org="other"))
    assert allowed(authorizer, admin, "iam", "create", org="acme")
    assert authorizer.check_global(admin, "iam", "create").allowed
    # but only for acme's admin: org other's "admin" is someone else
    assert not allowed(authorizer, Principal("other", "admin"), "function", "get", org="other")
    assert not allowed(authorizer, Principal("other", "admin"), "function", "get", org="acme")


def test_a_user_without_email_never_passes_for_a_service_account(policies, authorizer):
    policies.create("acme", {"name": "p", "rules": [rule(["admin"], ["*"], ["*"]),
                                                    rule(["user:0b1c"], ["run"], ["get"])]})
    eventually(authorizer, lambda: allowed(authorizer, Principal("acme", "admin"), "iam", "get"))
    # an OIDC user whose sub is "admin" is user:admin to policies, not the account admin
    assert not allowed(authorizer, Principal("acme", "admin", "user"), "iam", "get")
    assert allowed(authorizer, Principal("acme", "0b1c", "user"), "run", "get")
    assert not allowed(authorizer, Principal("acme", "0b1c"), "run", "get")


def test_only_global_policies_pass_a_check_for_every_org(policies, authorizer):
    policies.create("acme", {"name": "local", "rules": [rule(["ci"], ["*"], ["*"])]})
    eventually(authorizer, lambda: allowed(authorizer, CI, "iam", "create"))
    assert not authorizer.check_global(CI, "iam", "create").allowed


def test_a_denial_is_logged_and_raised_naming_subject_resource_and_action(authorizer, caplog):
    caplog.set_level(logging.WARNING, logger="dispatch.identity")
    decision = authorizer.check(CI, "secret", "delete", org="acme")
    assert not decision
    with pytest.raises(PermissionDenied, match="serviceaccount acme/ci may not delete secret "
                                               "in organization acme") as caught:
        decision.enforce()
    assert status_of(caught.value) == 403
    assert ("authz.denied kind=serviceaccount subject=ci subject_org=acme org=acme "
            "resource=secret action=delete") in caplog.text


# ---- reload ----------------------------------------------------------------------------


def test_a_change_reaches_the_authorizer_without_a_restart(policies, authorizer):
    assert not allowed(authorizer, CI, "run", "create")
    policies.create("acme", {"name": "p", "rules": [rule(["ci"], ["run"], ["create"])]})
    eventually(authorizer, lambda: allowed(authorizer, CI, "run", "create"))
    policies.update("acme", "p", {"rules": [rule(["ci"], ["run"], ["get"])]})
    eventually(authorizer, lambda: not allowed(authorizer, CI, "run", "create"))
    assert allowed(authorizer, CI, "run", "get")
    policies.delete("acme", "p")
    eventually(authorizer, lambda: not allowed(authorizer, CI, "run", "get"))


def two_processes_see_each_others_policies(first_store, second_store):
    """What two API processes sharing a store see: a policy written through one applies
    in the other (and its removal too)."""
    first, second = Authorizer(first_store), Authorizer(second_store)
    try:
        assert not allowed(second, CI, "secret", "get")
        PolicyService(first_store).create("acme", {"name": "p", "rules": [
            rule(["ci"], ["secret"], ["get"])]})
        eventually(second, lambda: allowed(second, CI, "secret", "get"))
        eventually(first, lambda: allowed(first, CI, "secret", "get"))
        PolicyService(second_store).delete("acme", "p")
        eventually(first, lambda: not allowed(first, CI, "secret", "get"))
    finally:
        first.close()
        second.close()


def test_two_authorizers_on_one_sqlite_file_see_each_others_changes(tmp_path):
    url = f"sqlite:///{tmp_path / 'dispatch.db'}"
    first_store, second_store = open_store(url), open_store(url)
    try:
        two_processes_see_each_others_policies(first_store, second_store)
    finally:
        first_store.close()
        second_store.close()


def test_two_authorizers_on_etcd_see_each_others_changes(etcd_endpoint):
    first_store, second_store = open_store(f"etcd://{etcd_endpoint}"), open_store(f"etcd://{etcd_endpoint}")
    try:
        for store in (first_store, second_store):  # a policy left by an earlier run
            for policy in store.list("policy", "acme"):
                store.delete("policy", "acme", policy["name"])
        two_processes_see_each_others_policies(first_store, second_store)
    finally:
        first_store.close()
        second_store.close()


def test_checks_from_many_threads_at_once_all_get_their_decision(policies, authorizer):
    # casbin parses its matcher with ast.parse on every enforce, which CPython 3.11 does
    # not support across threads ("AST constructor recursion depth mismatch"): the
    # authorizer serializes the checks it has not decided before
    import sys
    from concurrent.futures import ThreadPoolExecutor

    policies.create("acme", {"name": "p", "rules": [rule(["*"], ["function"], ["get"])]})
    eventually(authorizer, lambda: allowed(authorizer, CI, "function", "get"))
    asks = [(Principal("acme", f"user{i}"), resource)
            for i in range(1500) for resource in ("function", "secret")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # thread switches as often as they come under load
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda a: allowed(authorizer, a[0], a[1], "get"), asks))
    finally:
        sys.setswitchinterval(interval)
    assert answers == [resource == "function" for _, resource in asks]
