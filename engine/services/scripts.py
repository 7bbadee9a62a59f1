"""``run: script`` tasks of workflows: the code runs as a sandboxed process, confined as
function instances are (:mod:`engine.drivers.sandbox`: bubblewrap, no network, read-only
root, private ``/tmp``), with a hard timeout.

The script is ``/function/script.py`` (or ``script.js``) inside the sandbox; the task's
``arguments`` follow it on the command line (a list as given, a mapping as
``--key=value``), its ``environment`` is the whole environment (never the server's own),
``stdin`` its standard input. ``return`` picks the result: ``stdout`` (default),
``stderr``, ``code``, ``all`` (``{code, stdout, stderr}``) or ``none``. A non-zero exit
status faults the task unless ``return`` is ``code`` or ``all``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from ..drivers import sandbox
from ..errors import DispatchError, InvalidInput

#: the interpreter of each script language (the host's, as the built-in images use)
INTERPRETERS = {"python": sys.executable, "js": shutil.which("node")}
EXTENSIONS = {"python": "py", "js": "js"}
#: output kept of each stream
MAX_OUTPUT = 1 << 20


class ScriptFailed(DispatchError):
    """A script exited with a non-zero status, timed out or could not start."""


class ScriptRunner:
    """Runs scripts in a sandbox.

    :param sandbox: True: bubblewrap required; None: used when present; False: plain
        processes (development only)
    """

    def __init__(self, sandbox_mode: bool | None = None, timeout_seconds: float = 60.0):
        self.timeout_seconds = timeout_seconds
        self.bwrap = sandbox.bwrap_path() if sandbox_mode is not False else None
        if sandbox_mode is True and self.bwrap is None:
            raise RuntimeError("DISPATCH_SANDBOX=on but bwrap is not installed")

    def run(self, spec: dict[str, Any]) -> Any:
        language = spec.get("language")
        interpreter = INTERPRETERS.get(language)
        if interpreter is None:
            raise InvalidInput(f"no interpreter for script language {language!r} here")
        with tempfile.TemporaryDirectory(prefix="dispatch-script-") as tmp:
            src, instance = os.path.join(tmp, "src"), os.path.join(tmp, "run")
            os.makedirs(src)
            os.makedirs(instance)
            name = f"script.{EXTENSIONS[language]}"
            with open(os.path.join(src, name), "w", encoding="utf-8") as f:
                f.write(spec.get("code") or "")
            if self.bwrap:
                command = sandbox.bwrap_command(
                    bwrap=self.bwrap, interpreter=interpreter, src_dir=src,
                    server_file=os.path.join(src, name), instance_dir=instance,
                    tmp_size_mb=64, disable_userns=sandbox.can_disable_userns(self.bwrap))
                command += [interpreter, f"{sandbox.FUNCTION_DIR}/{name}"]
            else:
                command = [interpreter, os.path.join(src, name)]
            command += _arguments(spec.get("arguments"))
            environment = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
            environment.update({str(k): str(v) for k, v in
                                (spec.get("environment") or {}).items()})
            stdin = spec.get("stdin")
            try:
                done = subprocess.run(command, input=None if stdin is None else str(stdin),
                                      capture_output=True, text=True, env=environment,
                                      cwd=src, timeout=self.timeout_seconds)
            except subprocess.TimeoutExpired:
                raise ScriptFailed(f"the script ran longer than {self.timeout_seconds:g} s "
                                   "and was killed") from None
            except OSError as exc:
                raise ScriptFailed(f"the script could not start: {exc}") from None
        stdout, stderr = done.stdout[:MAX_OUTPUT], done.stderr[:MAX_OUTPUT]
        wanted = spec.get("return") or "stdout"
        if done.returncode != 0 and wanted not in ("code", "all"):
            raise ScriptFailed(f"the script exited with status {done.returncode}: "
                               f"{stderr.strip()[-2000:]}")
        return {"stdout": stdout, "stderr": stderr, "code": done.returncode,
                "all": {"code": done.returncode, "stdout": stdout, "stderr": stderr},
                "none": None}.get(wanted, stdout)


def _arguments(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, dict):
        return [f"--{k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
