"""What a function version becomes in OpenWhisk: its action's name, ``exec`` and limits.

* Name: ``<org>.<function>.<version>`` (Dispatch names have no dots, so it reads back
  unambiguously), checked against OpenWhisk's entity-name rule (ASCII ``\\w`` first, then
  ``\\w@ .-``; at most 256 characters).
* ``exec``: for a version built by the ``docker`` builder (its image config has a
  ``functionImage``), a blackbox action on that image, whose server answers ``/init``
  and ``/run`` on port 8080. Otherwise a native kind (``python:3``, ``nodejs:20`` by
  default) whose zip holds the source, an adapter from OpenWhisk's ``main(args)`` to
  Dispatch's ``handle(ctx, payload)``, and the image's dependencies: ``virtualenv/`` (its
  ``site-packages`` plus a ``bin/activate_this.py``, which OpenWhisk's Python launcher
  runs) or ``node_modules/``.
* Limits: the function's timeout and the driver's memory, clamped to OpenWhisk's ranges
  (``docs/reference.md``); :func:`limits` says what it clamped.

The adapter's answer, for the driver: ``{"payload": result}``, or ``{"error": {type,
message, stacktrace}}`` (OpenWhisk records an application error). A blackbox action's
server answers a ``{context, payload}`` value with Dispatch's own reply (see
``engine/runtimes/python/server.py``); the driver reads both.
"""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import re
import tempfile
import zipfile
from typing import Any

from ..errors import BuildError
from ..sources import unpack
from .base import Deployment

#: OpenWhisk's entity name (``EntityName`` in its common/scala), with Java's ASCII ``\w``
NAME_RULE = re.compile(r"\A([A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_@ .-]*[A-Za-z0-9_@.-]+)\Z")
NAME_MAX = 256
#: ``docs/reference.md``: per-action timeout and memory ranges, the code size cap
TIMEOUT_RANGE_MS = (100, 300_000)
MEMORY_RANGE_MB = (128, 512)
MAX_CODE_BYTES = 48 * 1024 * 1024
DEFAULT_KINDS = {"python3": "python:3", "nodejs": "nodejs:20"}

PYTHON_ADAPTER = '''"""Dispatch's adapter: OpenWhisk calls main(args); the function is handle(ctx, payload)."""
import glob, importlib, json, os, sys, traceback

HANDLER = %(handler)r
_HERE = os.path.dirname(os.path.abspath(__file__))
for _site in glob.glob(os.path.join(_HERE, "virtualenv", "lib", "python*", "site-packages")):
    if _site not in sys.path:
        sys.path.insert(1, _site)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
_MODULE, _, _FUNC = HANDLER.rpartition(".")
_handle = getattr(importlib.import_module(_MODULE), _FUNC)
OUTPUT_CAP_BYTES = 1024 * 1024


def _error(message, stacktrace=()):
    return {"error": {"type": "FunctionError", "message": message, "stacktrace": list(stacktrace)}}


def main(args):
    if isinstance(args, dict) and set(args) == {"context", "payload"}:
        ctx, payload = args["context"] or {}, args["payload"]
    else:
        ctx, payload = {}, args
    try:
        result = _handle(ctx, payload)
    except BaseException as exc:
        message = str(exc).replace("\\n", " ")
        stack = traceback.format_exc().splitlines()
        sys.stderr.write(traceback.format_exc())
        return _error("%%s: %%s" %% (type(exc).__name__, message) if message else type(exc).__name__, stack)
    try:
        size = len(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        return _error("the function's output is not JSON-serializable: %%s" %% exc)
    if size > OUTPUT_CAP_BYTES:
        return _error("output is larger than %%d bytes: the function returned %%d bytes of JSON" %% (OUTPUT_CAP_BYTES, size))
    return {"payload": result}
'''

ACTIVATE_THIS = '''"""Puts this virtualenv's site-packages on sys.path (run by OpenWhisk's Python launcher)."""
import glob, os, site
_base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _site in glob.glob(os.path.join(_base, "lib", "python*", "site-packages")):
    site.addsitedir(_site)
'''

NODE_ADAPTER = r"""'use strict';
// Dispatch's adapter: OpenWhisk calls main(args); the function is (context, payload) => result.
const path = require('path');
const { pathToFileURL } = require('url');
const HANDLER = %(handler)s;
const OUTPUT_CAP_BYTES = 1024 * 1024;

function spec() {
  const base = HANDLER.slice(HANDLER.lastIndexOf('/') + 1);
  if (/\.[cm]?js$/.test(base) || !base.slice(1).includes('.')) return { file: HANDLER, name: null };
  const dot = HANDLER.lastIndexOf('.');
  return { file: HANDLER.slice(0, dot), name: HANDLER.slice(dot + 1) };
}

// loaded now, so that a handler that cannot load fails the action's /init (OpenWhisk's
// "action developer error"), as Dispatch's own server fails at start-up
const { file, name } = spec();
const target = path.resolve(__dirname, file);
let resolved;
for (const candidate of [target, `${target}.mjs`]) { // require() does not look for .mjs
  try {
    resolved = require.resolve(candidate);
    break;
  } catch (err) { /* the next candidate */ }
}
if (!resolved) throw new Error(`handler module '${file}' not found`);

function pick(exported) {
  if (name === null && exported && typeof exported === 'object' && typeof exported.default === 'function') exported = exported.default;
  const fn = name === null ? exported : exported && exported[name];
  if (typeof fn !== 'function') throw new Error(`handler '${HANDLER}' is not a function`);
  return fn;
}

let loaded = null;
try {
  loaded = pick(require(resolved));
} catch (err) {
  // an ES module require() cannot load: imported at the first activation instead
  if (!err || !['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE'].includes(err.code)) throw err;
}

async function load() {
  if (!loaded) loaded = pick(await import(pathToFileURL(resolved).href));
  return loaded;
}

function failure(message, stacktrace) {
  return { error: { type: 'FunctionError', message, stacktrace: stacktrace || [] } };
}

async function main(args) {
  let context = {};
  let payload = args;
  const keys = args && typeof args === 'object' ? Object.keys(args).sort() : [];
  if (keys.length === 2 && keys[0] === 'context' && keys[1] === 'payload') [context, payload] = [args.context || {}, args.payload];
  let result;
  try {
    const handle = await load();
    result = await handle(context, payload === undefined ? null : payload);
  } catch (err) {
    console.error(err && err.stack ? err.stack : String(err));
    if (err instanceof Error) {
      const message = String(err.message).replace(/\s*\n\s*/g, ' ');
      const stack = [];
      for (const line of String(err.stack).split('\n')) {
        if (line.includes(__filename)) break; // the adapter's frames, and the runtime's below
        if (!line.includes('(node:internal/')) stack.push(line);
      }
      return failure(message ? `${err.name}: ${message}` : err.name, stack);
    }
    return failure(`a non-Error value was thrown: ${String(err)}`);
  }
  let text;
  try {
    text = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    return failure(`the function's output is not JSON-serializable: ${err.message}`);
  }
  if (text !== undefined && Buffer.byteLength(text) > OUTPUT_CAP_BYTES) {
    return failure(`output is larger than ${OUTPUT_CAP_BYTES} bytes: the function returned ${Buffer.byteLength(text)} bytes of JSON`);
  }
  return { payload: text === undefined ? null : JSON.parse(text) };
}

module.exports.main = main;
"""

NODE_ADAPTER_FILE = "__dispatch_action__.js"


def action_name(deployment: Deployment) -> str:
    """The action's name; BuildError if OpenWhisk would refuse it."""
    name = f"{deployment.org}.{deployment.name}.{deployment.version}"
    if len(name) > NAME_MAX:
        raise BuildError(
            f"the OpenWhisk action name {name[:40]}... would be {len(name)} characters "
            f"(organization, function name and version; OpenWhisk allows at most {NAME_MAX}): "
            "use a shorter function or organization name")
    if not NAME_RULE.match(name):
        raise BuildError(
            f"the OpenWhisk action name {name!r} is not a valid OpenWhisk name (ASCII letters, "
            "digits and _ @ . - only): rename the function")
    return name


def limits(deployment: Deployment, memory_mb: int) -> tuple[dict[str, int], list[str]]:
    """The action's ``limits`` and a message for each value clamped into OpenWhisk's range."""
    notes = []
    timeout = deployment.timeout_ms or 60_000
    low, high = TIMEOUT_RANGE_MS
    if not low <= timeout <= high:
        clamped = min(max(timeout, low), high)
        notes.append(f"timeout {timeout} ms is outside OpenWhisk's range {low}-{high} ms: the action's is {clamped} ms")
        timeout = clamped
    low, high = MEMORY_RANGE_MB
    if not low <= memory_mb <= high:
        clamped = min(max(memory_mb, low), high)
        notes.append(f"memory {memory_mb} MB is outside OpenWhisk's range {low}-{high} MB: the action's is {clamped} MB")
        memory_mb = clamped
    return {"timeout": timeout, "memory": memory_mb}, notes


def action_exec(deployment: Deployment, kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """The action's ``exec``: blackbox on the version's image, or a native kind's zip."""
    kinds = {**DEFAULT_KINDS, **(kinds or {})}
    image = deployment.image_config.get("functionImage")
    if image:
        return {"kind": "blackbox", "image": image}
    if deployment.language not in kinds:
        raise BuildError(f"the openwhisk driver cannot run {deployment.language!r} functions "
                                 f"(known: {', '.join(sorted(kinds))})")
    data = action_zip(deployment)
    if len(data) > MAX_CODE_BYTES:
        raise BuildError(f"the action's code would be {len(data)} bytes (source and dependencies), "
                                 f"over OpenWhisk's {MAX_CODE_BYTES} byte limit")
    return {"kind": kinds[deployment.language], "code": base64.b64encode(data).decode(),
            "binary": True, "main": "main"}


def action_zip(deployment: Deployment) -> bytes:
    """The zip of a native action: source, adapter, dependencies."""
    out = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="dispatch-ow-") as tmp, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        unpack(deployment.source(), tmp)
        # the node adapter writes its own package.json (from the source's)
        _add_tree(archive, tmp, "", skip=("package.json",) if deployment.language == "nodejs" else ())
        if deployment.language == "python3":
            _python_parts(archive, deployment, tmp)
        else:
            _node_parts(archive, deployment, tmp)
    return out.getvalue()


def _python_parts(archive: zipfile.ZipFile, deployment: Deployment, source_dir: str) -> None:
    if os.path.exists(os.path.join(source_dir, "__main__.py")):
        raise BuildError("the source has a __main__.py: OpenWhisk runs that file, so the "
                                 "openwhisk driver needs the name for its adapter; rename it")
    handler = deployment.handler
    if "." not in handler.strip("."):
        raise BuildError(f"handler {handler!r} must be MODULE.FUNCTION")
    archive.writestr("__main__.py", PYTHON_ADAPTER % {"handler": handler})
    for directory in deployment.image_config.get("paths") or []:  # the local builder's venv
        for site in glob.glob(os.path.join(directory, "lib", "python*", "site-packages")):
            rel = os.path.relpath(site, directory)
            _add_tree(archive, site, f"virtualenv/{rel}/")
            archive.writestr("virtualenv/bin/activate_this.py", ACTIVATE_THIS)


def _node_parts(archive: zipfile.ZipFile, deployment: Deployment, source_dir: str) -> None:
    package = {"name": "dispatch-action", "main": NODE_ADAPTER_FILE}
    try:  # keep the source's own package.json fields (e.g. "type"), but run the adapter
        with open(os.path.join(source_dir, "package.json")) as f:
            own = json.load(f)
        if isinstance(own, dict):
            package = {**own, "main": NODE_ADAPTER_FILE}
    except (OSError, ValueError):
        pass
    if package.get("type") == "module":
        raise BuildError("the openwhisk driver runs CommonJS packages: the source's package.json "
                                 "says \"type\": \"module\" (use .mjs files instead)")
    archive.writestr("package.json", json.dumps(package))
    archive.writestr(NODE_ADAPTER_FILE, NODE_ADAPTER % {"handler": json.dumps(deployment.handler)})
    modules = deployment.image_config.get("nodePath")
    if modules and os.path.isdir(modules):
        _add_tree(archive, modules, "node_modules/")


def _add_tree(archive: zipfile.ZipFile, root: str, prefix: str, skip: tuple[str, ...] = ()) -> None:
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(directory, name)
            if os.path.islink(path) and not os.path.exists(path):
                continue
            arcname = prefix + os.path.relpath(path, root)
            if arcname in skip:
                continue
            archive.write(path, arcname)


__all__ = ["action_exec", "action_name", "action_zip", "limits"]
