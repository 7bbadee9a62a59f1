"""Secrets and their key: the service on a real SQLite store, and how the key is loaded."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from api.errors import status_of
from cryptography.fernet import Fernet, MultiFernet

from engine import entities as E
from engine.crypto import KEY_FILE, SecretKeyError, load_cipher, parse_keys
from engine.errors import Conflict, InvalidInput, NotFound
from engine.jobs import RecordingJobs
from engine.names import NAME_MESSAGE
from engine.services.secrets import (
    ENCRYPTED, SECRET, MissingSecret, SecretService, UndecryptableSecret,
)
from engine.settings import Settings
from engine.store import open_store
from engine.system import Dispatch

PASSWORD = "OpenSesame-4f1c9e"  # distinctive, so that a search for it cannot match by chance


def cipher(*keys: bytes) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "dispatch.db")


@pytest.fixture
def store(db_path):
    store = open_store(f"sqlite:///{db_path}")
    yield store
    store.close()


@pytest.fixture
def key():
    return Fernet.generate_key()


@pytest.fixture
def secrets(store, key):
    return SecretService(store, cipher(key))


def raw_bytes(db_path: str) -> bytes:
    """Everything SQLite wrote: the database file, its WAL and any journal."""
    data = b""
    for suffix in ("", "-wal", "-journal", "-shm"):
        if os.path.exists(db_path + suffix):
            with open(db_path + suffix, "rb") as f:
                data += f.read()
    return data


# ---- the service --------------------------------------------------------------------


def test_create_returns_the_values_and_stores_only_ciphertext(secrets, store, db_path):
    shown = secrets.create("default", {"name": "door", "secrets": {"password": PASSWORD}})
    assert shown["secrets"] == {"password": PASSWORD}
    assert shown["kind"] == "Secret" and shown["status"] == E.READY
    assert ENCRYPTED not in shown

    stored = store.get(SECRET, "default", "door")
    assert "secrets" not in stored
    assert PASSWORD not in repr(stored)
    assert PASSWORD.encode() not in raw_bytes(db_path)
    assert b"door" in raw_bytes(db_path)  # the search does see what is stored in clear


def test_update_writes_new_ciphertext_and_no_clear_value(secrets, store, db_path):
    secrets.create("default", {"name": "door", "secrets": {"password": "old-value-1"}})
    before = store.get(SECRET, "default", "door")[ENCRYPTED]
    shown = secrets.update("default", "door", {"secrets": {"password": PASSWORD}})
    assert shown["secrets"] == {"password": PASSWORD}
    assert store.get(SECRET, "default", "door")[ENCRYPTED] != before
    assert PASSWORD.encode() not in raw_bytes(db_path)
    assert secrets.get("default", "door")["secrets"] == {"password": PASSWORD}


def test_get_and_list_reveal_the_values_of_the_orgs_own_secrets(secrets):
    secrets.create("default", {"name": "a", "secrets": {"k": "1"}})
    secrets.create("default", {"name": "b", "secrets": {"k": "2"}})
    secrets.create("other", {"name": "a", "secrets": {"k": "3"}})
    assert secrets.get("default", "a")["secrets"] == {"k": "1"}
    assert [(s["name"], s["secrets"]) for s in secrets.list("default")] == [
        ("a", {"k": "1"}), ("b", {"k": "2"})]
    assert [s["secrets"] for s in secrets.list("other")] == [{"k": "3"}]
    assert secrets.list("nobody") == []


def test_list_filters_by_application_tag(secrets):
    secrets.create("default", {"name": "a", "tags": [{"key": "Application", "value": "shop"}]})
    secrets.create("default", {"name": "b"})
    assert [s["name"] for s in secrets.list("default", tags={"Application": "shop"})] == ["a"]


def test_secrets_may_be_absent_or_empty(secrets):
    assert secrets.create("default", {"name": "empty"})["secrets"] == {}
    assert secrets.create("default", {"name": "none", "secrets": None})["secrets"] == {}


def test_creating_a_secret_twice_conflicts(secrets):
    secrets.create("default", {"name": "door", "secrets": {}})
    with pytest.raises(Conflict, match="door already exists"):
        secrets.create("default", {"name": "door", "secrets": {}})


@pytest.mark.parametrize("name", [None, "", "bad name", "-dash", "a/b"])
def test_a_bad_name_is_refused_with_functions_message(secrets, name):
    with pytest.raises(InvalidInput, match="name") as caught:
        secrets.create("default", {"name": name, "secrets": {}})
    if name:
        assert NAME_MESSAGE in caught.value.message


@pytest.mark.parametrize("values, field", [
    ("just-a-string", "secrets"),
    (["x"], "secrets"),
    ({"password": 31337}, "secrets.password"),
    ({"password": {"nested": "31337"}}, "secrets.password"),
    ({"ok": "fine", "pin": None}, "secrets.pin"),
    ({"": "31337"}, "secrets"),
])
def test_bad_values_are_refused_naming_the_key_and_never_the_value(secrets, store, values, field):
    with pytest.raises(InvalidInput) as caught:
        secrets.create("default", {"name": "door", "secrets": values})
    assert caught.value.message.startswith(field)
    assert "31337" not in caught.value.message
    assert store.list(SECRET, "default") == []  # nothing half-written


def test_update_replaces_values_and_tags(secrets):
    secrets.create("default", {"name": "door", "secrets": {"a": "1", "b": "2"}})
    tags = [{"key": "Application", "value": "shop"}]
    shown = secrets.update("default", "door", {"name": "door", "secrets": {"c": "3"}, "tags": tags})
    assert shown["secrets"] == {"c": "3"} and shown["tags"] == tags
    assert secrets.get("default", "door")["secrets"] == {"c": "3"}


def test_update_without_values_keeps_them(secrets):
    secrets.create("default", {"name": "door", "secrets": {"password": PASSWORD}})
    tags = [{"key": "Application", "value": "shop"}]
    shown = secrets.update("default", "door", {"secrets": None, "tags": tags})
    assert shown["secrets"] == {"password": PASSWORD} and shown["tags"] == tags
    assert secrets.get("default", "door")["secrets"] == {"password": PASSWORD}


def test_update_checks_name_values_and_existence(secrets):
    secrets.create("default", {"name": "door", "secrets": {}})
    with pytest.raises(InvalidInput, match="does not match"):
        secrets.update("default", "door", {"name": "window", "secrets": {}})
    with pytest.raises(InvalidInput, match="secrets.pin"):
        secrets.update("default", "door", {"secrets": {"pin": 1234}})
    with pytest.raises(NotFound, match="window not found"):
        secrets.update("default", "window", {"secrets": {}})


def test_delete_removes_the_secret(secrets):
    secrets.create("default", {"name": "door", "secrets": {"a": "1"}})
    assert secrets.delete("default", "door") is None
    with pytest.raises(NotFound, match="door not found"):
        secrets.get("default", "door")
    with pytest.raises(NotFound):
        secrets.delete("default", "door")


def test_resolve_merges_the_named_secrets_later_names_winning(secrets):
    secrets.create("default", {"name": "base", "secrets": {"user": "admin", "password": "p1"}})
    secrets.create("default", {"name": "override", "secrets": {"password": "p2", "token": "t"}})
    assert secrets.resolve("default", ["base", "override"]) == {
        "user": "admin", "password": "p2", "token": "t"}
    assert secrets.resolve("default", ["override", "base"])["password"] == "p1"
    assert secrets.resolve("default", ["base", "override", "base"])["password"] == "p1"
    assert secrets.resolve("default", []) == {}


def test_resolve_names_the_missing_secret(secrets):
    secrets.create("default", {"name": "base", "secrets": {"password": PASSWORD}})
    with pytest.raises(MissingSecret) as caught:
        secrets.resolve("default", ["base", "gone"])
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.name == "gone"
    assert caught.value.message == "secret gone not found"
    assert PASSWORD not in caught.value.message


def test_resolve_sees_only_the_orgs_own_secrets(secrets):
    secrets.create("other", {"name": "base", "secrets": {"password": PASSWORD}})
    with pytest.raises(MissingSecret, match="secret base not found"):
        secrets.resolve("default", ["base"])


def test_resolve_treats_a_malformed_name_as_missing(secrets):
    with pytest.raises(MissingSecret, match="not found"):
        secrets.resolve("default", ["../base"])


def test_ciphertext_moved_to_another_secret_does_not_decrypt_there(secrets, store):
    secrets.create("default", {"name": "mine", "secrets": {"password": PASSWORD}})
    secrets.create("other", {"name": "theirs", "secrets": {}})
    theirs = store.get(SECRET, "other", "theirs")
    theirs[ENCRYPTED] = store.get(SECRET, "default", "mine")[ENCRYPTED]
    store.update(theirs)
    with pytest.raises(UndecryptableSecret, match="another secret") as caught:
        secrets.resolve("other", ["theirs"])
    assert PASSWORD not in caught.value.message


def test_a_changed_key_is_a_clear_error_not_a_crash(store):
    SecretService(store, cipher(Fernet.generate_key())).create(
        "default", {"name": "door", "secrets": {"password": PASSWORD}})
    with pytest.raises(UndecryptableSecret, match="DISPATCH_SECRET_KEY") as caught:
        SecretService(store, cipher(Fernet.generate_key())).get("default", "door")
    assert status_of(caught.value) == 500
    assert PASSWORD not in caught.value.message


def test_rotated_keys_decrypt_old_secrets_and_rotate_rewrites_them(store):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    SecretService(store, cipher(old)).create("default", {"name": "a", "secrets": {"k": "1"}})
    SecretService(store, cipher(old)).create("other", {"name": "b", "secrets": {"k": "2"}})

    both = SecretService(store, cipher(new, old))
    assert both.resolve("default", ["a"]) == {"k": "1"}  # the old key still decrypts
    both.create("default", {"name": "c", "secrets": {"k": "3"}})  # the new key encrypts
    assert SecretService(store, cipher(new)).get("default", "c")["secrets"] == {"k": "3"}

    assert both.rotate() == 3
    only_new = SecretService(store, cipher(new))
    assert [s["secrets"] for s in only_new.list("default")] == [{"k": "1"}, {"k": "3"}]
    assert only_new.get("other", "b")["secrets"] == {"k": "2"}


# ---- the key ------------------------------------------------------------------------


def settings(tmp_path, **overrides) -> Settings:
    return Settings.from_env({}, home=str(tmp_path / "home"), **overrides)


def test_embedded_generates_a_private_key_file_and_reuses_it(tmp_path):
    first = load_cipher(settings(tmp_path))
    path = tmp_path / "home" / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = path.read_text()
    Fernet(content.strip())  # a valid key

    second = load_cipher(settings(tmp_path))
    assert path.read_text() == content
    assert second.decrypt(first.encrypt(b"x")) == b"x"
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary left over


def test_processes_starting_together_agree_on_one_key(tmp_path):
    ciphers: list[MultiFernet] = []
    threads = [threading.Thread(target=lambda: ciphers.append(load_cipher(settings(tmp_path))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = ciphers[0].encrypt(b"x")
    assert all(c.decrypt(token) == b"x" for c in ciphers)


def test_the_configured_key_wins_and_no_file_is_written(tmp_path, key):
    loaded = load_cipher(settings(tmp_path, secret_key=key.decode()))
    assert Fernet(key).decrypt(loaded.encrypt(b"x")) == b"x"
    assert not (tmp_path / "home" / KEY_FILE).exists()


def test_the_key_is_read_from_the_environment_and_kept_out_of_repr(tmp_path, key):
    loaded = Settings.from_env({"DISPATCH_SECRET_KEY": key.decode(), "DISPATCH_HOME": str(tmp_path)})
    assert loaded.secret_key == key.decode()
    assert key.decode() not in repr(loaded)


def test_a_key_list_encrypts_with_the_first_and_decrypts_with_all(tmp_path):
    new, old = Fernet.generate_key(), Fernet.generate_key()
    loaded = load_cipher(settings(tmp_path, secret_key=f"{new.decode()}, {old.decode()}"))
    assert loaded.decrypt(Fernet(old).encrypt(b"old")) == b"old"
    assert Fernet(new).decrypt(loaded.encrypt(b"new")) == b"new"


@pytest.mark.parametrize("value", ["not-a-key", "c2hvcnQ=", " , ", "{good},broken"])
def test_a_bad_key_is_a_clear_start_up_error_that_does_not_quote_it(tmp_path, value):
    value = value.replace("{good}", Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError) as caught:
        load_cipher(settings(tmp_path, secret_key=value))
    message = str(caught.value)
    assert "DISPATCH_SECRET_KEY" in message and "Fernet" in message
    for part in value.split(","):
        if part.strip():
            assert part.strip() not in message


def test_a_damaged_key_file_names_the_file(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / KEY_FILE).write_bytes(b"\xff\xfe garbage")
    with pytest.raises(SecretKeyError, match=KEY_FILE):
        load_cipher(settings(tmp_path))


def test_distributed_without_a_key_refuses_to_start(tmp_path):
    distributed = settings(tmp_path, store_url="etcd://127.0.0.1:1", broker_url="redis://x")
    with pytest.raises(SecretKeyError, match="DISPATCH_SECRET_KEY is required") as caught:
        load_cipher(distributed)
    assert "every api, worker and scheduler process" in str(caught.value)
    # Dispatch checks the key before opening anything: no etcd is needed to see the error
    with pytest.raises(SecretKeyError):
        Dispatch(distributed, RecordingJobs())
    assert not (tmp_path / "home" / KEY_FILE).exists()


def test_distributed_with_a_key_loads_it(tmp_path, key):
    loaded = load_cipher(settings(tmp_path, store_url="etcd://h:2379", secret_key=key.decode()))
    assert Fernet(key).decrypt(loaded.encrypt(b"x")) == b"x"


def test_the_memory_store_gets_a_key_that_is_never_written(tmp_path):
    load_cipher(settings(tmp_path, store_url="memory://"))
    assert not (tmp_path / "home").exists()


def test_parse_keys_names_its_source_not_the_key():
    with pytest.raises(SecretKeyError, match="^/etc/key: the key is not a Fernet key"):
        parse_keys("sekrit", "/etc/key")


def test_the_assembled_system_has_a_secret_service_on_its_store(tmp_path):
    system = Dispatch(settings(tmp_path, store_url="memory://", driver="local"), RecordingJobs())
    try:
        system.secrets.create("default", {"name": "door", "secrets": {"password": PASSWORD}})
        assert system.secrets.resolve("default", ["door"]) == {"password": PASSWORD}
        assert system.secrets.store is system.store
    finally:
        system.close()
