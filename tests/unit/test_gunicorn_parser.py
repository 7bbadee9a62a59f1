"""The distributed ``api`` and ``gateway`` processes (the Procfile's gunicorn lines) parse
requests with gunicorn's C parser (``gunicorn_h1c``, a dependency): nothing in their
settings turns it off, and it is installed."""

from __future__ import annotations

import pathlib
import shlex

import pytest
from gunicorn.config import Config
from gunicorn.http import message

PROCFILE = pathlib.Path(__file__).resolve().parents[2] / "Procfile"


def gunicorn_config(process: str) -> Config:
    """gunicorn's settings as the Procfile's line for ``process`` gives them."""
    for line in PROCFILE.read_text().splitlines():
        if line.startswith(f"{process}:"):
            words = shlex.split(line.partition(":")[2])
            break
    else:
        raise AssertionError(f"no {process} line in the Procfile")
    args = words[words.index("gunicorn") + 1:]
    config = Config()
    parsed = config.parser().parse_args(args)
    for name, value in vars(parsed).items():
        if value is not None and name != "args":
            config.set(name.lower(), value)
    return config


@pytest.mark.parametrize("process", ["api", "gateway"])
def test_the_procfiles_gunicorn_processes_use_the_c_parser(process):
    config = gunicorn_config(process)
    assert config.worker_class_str == "gthread"  # the settings were read
    assert message._check_fast_parser(config)
