"""Context resolution and output rendering, without a server."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml
from click import ClickException

from cli import config
from cli.output import Column, dump, field, format_time, render_table, timestamp


def _write(path, **context):
    path.write_text(json.dumps({"current": "local", "contexts": {"local": context}}))


def test_defaults_when_nothing_is_configured(tmp_path):
    context = config.resolve({}, {}, str(tmp_path / "missing.json"))
    assert context == config.Context("127.0.0.1", 8080, "http", "default")
    assert context.url == "http://127.0.0.1:8080"


def test_flags_override_env_override_file(tmp_path):
    path = tmp_path / "config.json"
    _write(path, host="file-host", port=1111, scheme="https", organization="file-org")
    env = {"DISPATCH_PORT": "2222", "DISPATCH_ORGANIZATION": "env-org"}
    context = config.resolve({"organization": "flag-org", "host": None}, env, str(path))
    assert (context.host, context.port, context.scheme, context.organization) == (
        "file-host", 2222, "https", "flag-org")


def test_empty_fields_in_the_file_count_as_absent(tmp_path):
    # the original CLI writes "" for what it does not know
    path = tmp_path / "config.json"
    _write(path, host="", port=None, organization="", cookie="")
    assert config.resolve({}, {}, str(path)) == config.Context()


def test_config_path_from_flag_then_env_then_home():
    assert config.config_path("a.json", {"DISPATCH_CONFIG": "b.json"}) == "a.json"
    assert config.config_path(None, {"DISPATCH_CONFIG": "b.json"}) == "b.json"
    assert config.config_path(None, {}) == os.path.expanduser("~/.dispatch/config.json")


def test_write_context_keeps_other_contexts_and_unknown_fields(tmp_path):
    path = tmp_path / "sub" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({
        "current": "prod",
        "contexts": {
            "prod": {"host": "dispatch.example", "port": 443},
            "local": {"cookie": "session=1", "namespace": "dispatch"},
        },
    }))
    config.write_context(str(path), config.Context(port=9000, organization="acme"))
    document = json.loads(path.read_text())
    assert document["current"] == "local"
    assert document["contexts"]["prod"] == {"host": "dispatch.example", "port": 443}
    assert document["contexts"]["local"] == {
        "host": "127.0.0.1", "port": 9000, "scheme": "http", "organization": "acme",
        "cookie": "session=1", "insecure": False, "namespace": "dispatch",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a cookie is a credential
    assert config.resolve({}, {}, str(path)).port == 9000


def test_a_config_file_that_is_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{nope")
    with pytest.raises(ClickException, match="cannot read config file"):
        config.resolve({}, {}, str(path))


def test_a_port_that_is_not_a_number_is_a_clear_error():
    with pytest.raises(ClickException, match="port must be a number"):
        config.resolve({}, {"DISPATCH_PORT": "http"}, "/nonexistent")


def test_table_has_upper_case_headers_and_one_row_per_entity():
    columns = [Column("NAME", field("name")), Column("STATUS", field("status"))]
    table = render_table([{"name": "a", "status": "READY"}, {"name": "007"}], columns)
    lines = table.splitlines()
    assert lines[0].split("|") == [" NAME   ", " STATUS"]
    assert lines[2].split() == ["a", "|", "READY"]
    assert lines[3].split() == ["007", "|"]  # not renumbered, blank when missing


def test_times_are_dates_and_missing_times_are_blank():
    cell = timestamp("createdTime")
    assert cell({}) == "" and cell({"createdTime": 0}) == ""
    assert cell({"createdTime": 1700000000}).endswith("2023")
    assert format_time(1700000000) == cell({"createdTime": 1700000000})


def test_dump_json_and_yaml():
    data = {"name": "hello", "tags": []}
    assert json.loads(dump(data, "json")) == data
    assert yaml.safe_load(dump(data, "yaml")) == data
