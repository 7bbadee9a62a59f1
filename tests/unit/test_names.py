"""One name rule for every entity kind: whole-string match, at most 63 characters."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInput
from engine.jobs import RecordingJobs
from engine.names import NAME_MAX, is_name, validate_name, validate_names
from engine.settings import Settings
from engine.system import Dispatch


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    system = Dispatch(Settings.from_env({}, home=str(home), store_url="memory://",
                                        driver="local"), RecordingJobs())
    yield system
    system.close()


CREATORS = {
    "function": lambda s, n: s.functions.create("default", {"name": n, "image": "python3",
                                                            "handler": "a.b"}),
    "secret": lambda s, n: s.secrets.create("default", {"name": n, "secrets": {}}),
    "image": lambda s, n: s.images.create("default", {"name": n, "baseImageName": "b"}),
    "base image": lambda s, n: s.base_images.create("default", {"name": n, "dockerUrl": "x",
                                                                "language": "python3"}),
    "api": lambda s, n: s.apis.create("default", {"name": n, "function": "f"}),
    "subscription": lambda s, n: s.subscriptions.create("default", {
        "name": n, "eventType": "a.b", "function": "f"}),
    "event driver": lambda s, n: s.event_drivers.create("default", {"name": n,
                                                                    "type": "cron"}),
    "event driver type": lambda s, n: s.event_drivers.create_type("default", {
        "name": n, "image": "x"}),
    "organization": lambda s, n: s.identity.organizations.create({"name": n}),
    "service account": lambda s, n: s.identity.service_accounts.create("default", {
        "name": n, "publicKey": "x"}),
    "policy": lambda s, n: s.identity.policies.create("default", {"name": n, "rules": []}),
    "run": lambda s, n: s.runs.start("default", "f", {}, name=n),
}

BAD = {
    "a trailing newline": ("ok\n", "start with"),
    "too long": ("a" * (NAME_MAX + 1), f"over the limit of {NAME_MAX}"),
    "a million characters": ("a" * 1_000_000, f"over the limit of {NAME_MAX}"),
    "non-ASCII letters": ("café", "start with"),
}


@pytest.mark.parametrize("bad", BAD, ids=list(BAD))
@pytest.mark.parametrize("kind", CREATORS, ids=list(CREATORS))
def test_every_kind_refuses_a_malformed_name_naming_the_problem(system, kind, bad):
    name, message = BAD[bad]
    with pytest.raises(InvalidInput) as caught:
        CREATORS[kind](system, name)
    assert message in caught.value.message
    assert len(caught.value.message) < 300  # a long name is not echoed whole


def test_the_longest_name_is_accepted_and_one_more_refused():
    assert validate_name("a" * NAME_MAX) == "a" * NAME_MAX
    assert is_name("a" * NAME_MAX) and not is_name("a" * (NAME_MAX + 1))
    assert not is_name("a\n") and not is_name("") and not is_name(None)


def test_lists_of_names_name_the_position_of_the_bad_one():
    assert validate_names(None) == [] and validate_names(["a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidInput, match=r"^secrets must be a list of names$"):
        validate_names("a")
    with pytest.raises(InvalidInput, match=r"^secrets\[1\] 'b c' should start"):
        validate_names(["a", "b c"])
    with pytest.raises(InvalidInput, match=r"^secrets\[0\] is required$"):
        validate_names([""])


def test_a_made_up_event_driver_name_fits_the_limit_whatever_its_type(system):
    long_type = "t" * NAME_MAX
    system.event_drivers.create_type("default", {"name": long_type, "image": "x"})
    driver = system.event_drivers.create("default", {"type": long_type})
    assert len(driver["name"]) <= NAME_MAX and driver["name"].startswith("t" * 54 + "-")
