"""Bootstrap: the first admin (organization, service account, global policy), made once
and safely again; its private key returned once and written 0600; a key file variant."""

from __future__ import annotations

import base64
import os
import stat
import threading

import pytest

from engine.errors import InvalidInput
from engine.identity.authorizer import Authorizer
from engine.identity.bootstrap import bootstrap, bootstrap_from_key, write_private_key
from engine.identity.errors import BadSignature
from engine.identity.organizations import OrganizationService
from engine.identity.policies import PolicyService
from engine.identity.service_accounts import ServiceAccountService, issue_token
from engine.store import open_store

from ..identity_keys import public_b64, public_pem, private_pem, rsa_key


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    store = open_store("memory://" if request.param == "memory"
                       else f"sqlite:///{tmp_path / 'dispatch.db'}")
    yield store
    store.close()


def admin_of(store, token):
    accounts, authorizer = ServiceAccountService(store), Authorizer(store)
    try:
        principal = accounts.verify(token)
        return principal, [authorizer.check(principal, resource, action, org).allowed
                           for resource, action, org in (("function", "delete", "default"),
                                                         ("iam", "create", "default"),
                                                         ("secret", "get", "elsewhere"))]
    finally:
        accounts.close()
        authorizer.close()


def test_bootstrap_makes_an_admin_allowed_everything_everywhere(store):
    result = bootstrap(store)
    assert (result.org, result.account, result.policy) == ("default", "admin", "admin")
    assert result.private_key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert OrganizationService(store).get("default")["status"] == "READY"
    assert PolicyService(store).get("default", "admin")["global"] is True
    principal, decisions = admin_of(store, issue_token(result.private_key, "default", "admin"))
    assert principal.subject == "admin" and decisions == [True, True, True]


def test_bootstrap_again_changes_nothing_and_returns_no_key(store):
    first = bootstrap(store)
    account = ServiceAccountService(store).get("default", "admin")
    again = bootstrap(store)
    assert again.private_key is None
    assert ServiceAccountService(store).get("default", "admin")["revision"] == account["revision"]
    # the first key still works
    assert admin_of(store, issue_token(first.private_key, "default", "admin"))[1][0]


def test_bootstrap_with_a_new_key_retires_the_old_one(store):
    first = bootstrap(store)
    second = bootstrap(store, new_key=True)
    assert second.private_key and second.private_key != first.private_key
    assert admin_of(store, issue_token(second.private_key, "default", "admin"))[1][0]
    with pytest.raises(BadSignature):
        admin_of(store, issue_token(first.private_key, "default", "admin"))


def test_concurrent_bootstraps_leave_one_admin_and_one_usable_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'dispatch.db'}"
    stores = [open_store(url) for _ in range(4)]
    results = [None] * 4

    def run(i):
        results[i] = bootstrap(stores[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [r.private_key for r in results if r.private_key]
    assert len(keys) == 1  # the others found the admin made: theirs was never stored
    assert admin_of(stores[0], issue_token(keys[0], "default", "admin"))[1][0]
    for s in stores:
        s.close()


def test_bootstrap_from_a_pem_or_base64_key_file(store, tmp_path):
    pem_file = tmp_path / "admin.pem"
    pem_file.write_bytes(public_pem(rsa_key()))
    result = bootstrap_from_key(store, pem_file, org="ops", account="root")
    assert result.private_key is None and (result.org, result.account) == ("ops", "root")
    assert admin_of(store, issue_token(private_pem(rsa_key()), "ops", "root"))[0].org == "ops"
    # a rotated key file replaces the key on the next start
    b64_file = tmp_path / "admin.b64"
    b64_file.write_text(public_b64(rsa_key(2048, 1)) + "\n")
    bootstrap_from_key(store, b64_file, org="ops", account="root")
    assert admin_of(store, issue_token(private_pem(rsa_key(2048, 1)), "ops", "root"))[1][0]


@pytest.mark.parametrize("content, message", [
    (None, "No such file"),
    (b"not a key", "is not base64 encoded"),
    (base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n"),
     "is not a public key in PEM"),
])
def test_a_bad_key_file_is_refused_naming_the_file(store, tmp_path, content, message):
    path = tmp_path / "admin.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=f"bootstrap public key file {path}.*{message}"):
        bootstrap_from_key(store, path)
    assert OrganizationService(store).list() == []


def test_the_private_key_file_is_only_readable_by_its_owner(tmp_path):
    path = tmp_path / "ctx" / "admin.key"
    write_private_key(path, b"KEY")
    assert path.read_bytes() == b"KEY"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.chmod(0o644)
    write_private_key(path, b"NEW")
    assert path.read_bytes() == b"NEW" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
