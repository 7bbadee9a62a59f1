"""Dispatch's Python function server: runs ``handle(ctx, payload)`` once per request.

Self-contained on purpose (standard library only, Python >= 3.9): it is copied into
function images as is and run by every driver::

    python3 -I server.py [--handler MOD.FUNC | --stem] --dir /function [--socket PATH | --port N]

Protocols spoken (one invocation at a time, HTTP/1.1 keep-alive):

* Dispatch: ``GET /healthz`` -> ``{}``; ``POST /`` with ``{"context", "payload"}`` ->
  ``{"context": {"logs": {"stdout", "stderr"}, "error"}, "payload"}``.
* OpenWhisk actions (``docs/actions-new.md``): ``POST /init`` with ``{"value": {name,
  main, code, binary, env}}``, accepted once (a second is a 403). With ``--handler`` (a
  blackbox action: the function is in the image) the init only applies ``env``; without
  it (a native ``python:3`` action) ``code`` is the action: a base64 zip when ``binary``
  (``__main__.py``, optionally ``virtualenv/`` with ``bin/activate_this.py``) or the text
  of ``__main__.py``, and ``main`` names its entry function ``main(args)``; a failure is
  a 502 ``{"error": "..."}``. ``POST /run`` with ``{"value": params, "namespace",
  "action_name", "activation_id", "transaction_id", "deadline", ...}`` sets each field
  but ``value`` as the environment variable ``__OW_<FIELD>`` and answers the result
  object, or ``{"error": ...}``; the activation's stdout and stderr are written to fds 1
  and 2, each ended by the line ``XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX``. With
  ``--handler``, a ``value`` of exactly ``{"context", "payload"}`` is a Dispatch request,
  answered as ``POST /`` is (plus a top-level ``error`` when the function failed, so that
  OpenWhisk records an application error).

Limits: a result whose JSON is over 1 MB (``OUTPUT_CAP_BYTES``) is refused with a
``FunctionError``; each invocation's stdout and stderr are capped at 64 KB, marked
``... [truncated]``.

The handler is imported at start-up: if it cannot be, one line saying why is printed to
stderr (prefixed ``dispatch-runtime: handler error:``) and the process exits with code 3.

``--stem`` starts a pre-warmed "stem cell": the interpreter and this server are loaded,
the function is not yet known. Its one ``POST /init`` with ``{"value": {"main":
"MOD.FUNC"}}`` imports the handler from ``--dir`` (filled meanwhile by the driver) as
``--handler`` would have at start-up, and the server is from then on that function's;
a handler that cannot be loaded is a 502 ``{"error": "<the one-line reason>"}``.
Exit codes: 0 after SIGTERM (the request in flight is finished first), 2 bad usage.
"""

import argparse
import base64
import importlib
import importlib.util
import io
import json
import os
import selectors
import signal
import socket
import sys
import traceback
import zipfile

EXIT_HANDLER_ERROR = 3
#: the per-stream cap on captured log bytes of one invocation
LOG_CAP_BYTES = 64 * 1024
#: the largest result, as JSON, a function may return
OUTPUT_CAP_BYTES = 1024 * 1024
TRUNCATED_MARK = "... [truncated]"
MAX_HEAD_BYTES = 64 * 1024
OPENWHISK_SENTINEL = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 411: "Length Required",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            502: "Bad Gateway"}


class HandlerError(Exception):
    """The handler cannot be loaded; the message is the one-line reason."""


def load_handler(spec, directory):
    """Import ``MOD.FUNC`` from ``directory`` and return the function."""
    module_name, _, func_name = spec.rpartition(".")
    if not module_name or not func_name:
        raise HandlerError("handler %r must be MODULE.FUNCTION" % spec)
    sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise HandlerError("handler module %r not found" % module_name) from None
        raise HandlerError("ModuleNotFoundError while importing %r: %s" % (module_name, exc)) from None
    except SyntaxError as exc:
        where = exc.filename or module_name
        if os.path.isabs(where) and where.startswith(os.path.abspath(directory) + os.sep):
            where = os.path.relpath(where, directory)
        raise HandlerError("%s in %s line %s: %s" % (type(exc).__name__, where, exc.lineno, exc.msg)) from None
    except BaseException as exc:  # the module's own code failed while being imported
        raise HandlerError("%s while importing %r: %s" % (type(exc).__name__, module_name, exc)) from None
    if not hasattr(module, func_name):
        raise HandlerError("module %r has no attribute %r" % (module_name, func_name))
    func = getattr(module, func_name)
    if not callable(func):
        raise HandlerError("handler %r is not callable" % spec)
    return func


class Capture:
    """Sends fds 1 and 2 to files during one invocation, then reads them back.

    Redirecting the descriptors (not just ``sys.stdout``) also captures what C code and
    subprocesses write.
    """

    def __init__(self, directory=None):
        self._files = []
        for name in ("stdout", "stderr"):
            if directory:  # beside the socket, so the driver can read them after a crash
                fd = os.open(os.path.join(directory, name),
                             os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
            else:
                import tempfile
                fd, path = tempfile.mkstemp(prefix="dispatch-" + name + "-")
                os.unlink(path)
            self._files.append(fd)
        self._saved = (os.dup(1), os.dup(2))

    def start(self):
        _flush_std()
        for fd in self._files:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        os.dup2(self._files[0], 1)
        os.dup2(self._files[1], 2)

    def stop(self):
        """Restore fds 1 and 2; return the (stdout, stderr) bytes written meanwhile."""
        _flush_std()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        return tuple(_read_capped(fd) for fd in self._files)


def _flush_std():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # the function may have replaced or closed them
            pass


def _read_capped(fd):
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, LOG_CAP_BYTES), 0) if size else b""
    return data, size > LOG_CAP_BYTES


def log_lines(captured):
    data, truncated = captured
    lines = data.decode("utf-8", "replace").splitlines()
    if truncated:
        lines.append(TRUNCATED_MARK)
    return lines


def function_error(exc):
    """Dispatch's error object for an exception the handler raised."""
    message = str(exc).replace("\n", " ")
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None  # skip the server's frame
    stack = "".join(traceback.format_exception(type(exc), exc, tb)).splitlines()
    return {"type": "FunctionError",
            "message": "%s: %s" % (type(exc).__name__, message) if message else type(exc).__name__,
            "stacktrace": stack}


def encode_result(result, subject):
    """``(JSON text, None)`` of a result, or ``("null", error)`` if it cannot or may not be returned."""
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        message = "%s is not JSON-serializable: %s" % (subject, exc)
        return "null", {"type": "FunctionError", "message": message, "stacktrace": []}
    size = len(text)  # ASCII (ensure_ascii): one byte per character
    if size > OUTPUT_CAP_BYTES:
        message = "output is larger than %d bytes: the function returned %d bytes of JSON" % (OUTPUT_CAP_BYTES, size)
        return "null", {"type": "FunctionError", "message": message, "stacktrace": []}
    return text, None


class Runtime:
    """Calls the handler with captured output and shapes the protocols' answers."""

    def __init__(self, handler, capture, stem_dir=None):
        #: ``handler(ctx, payload)``; None until ``/init`` loads a native action
        self.handler = handler
        #: a stem cell's function directory: ``/init`` names the handler to load from it
        self.stem_dir = stem_dir
        self.capture = capture
        #: an OpenWhisk native action's ``main(args)`` (then ``handler`` wraps it)
        self.native = False
        self.initialized = False

    def invoke(self, ctx, payload):
        """Run the handler once: ``(result, error, stdout bytes, stderr bytes)``."""
        self.capture.start()
        result = error = None
        try:
            result = self.handler(ctx, payload)
        except BaseException as exc:  # SystemExit too: a function must not end the server
            error = function_error(exc)
        finally:
            out, err = self.capture.stop()
        return result, error, out, err

    def dispatch(self, request, openwhisk=False):
        """``POST /``: the Dispatch function protocol (inside ``POST /run`` if ``openwhisk``:
        the logs also go out framed, and a failure is also a top-level ``error``)."""
        if self.native or self.handler is None:
            return 400, '{"error": "this server runs an OpenWhisk action: use POST /run"}'
        ctx = request.get("context") or {}
        result, error, out, err = self.invoke(ctx, request.get("payload"))
        if openwhisk:
            _write_activation_logs(out, err)
        payload = "null"
        if error is None:
            payload, error = encode_result(result, "the function's output")
        context = {"logs": {"stdout": log_lines(out), "stderr": log_lines(err)}, "error": error}
        extra = ', "error": %s' % json.dumps(error) if openwhisk and error else ""
        # the result is encoded once, and spliced in: it may be up to a megabyte
        return '{"context": %s, "payload": %s%s}' % (json.dumps(context), payload, extra)

    def openwhisk_run(self, request):
        """``POST /run``: OpenWhisk's action protocol."""
        if self.handler is None:
            return 502, '{"error": "the action has not been initialized (POST /init first)"}'
        value = request.get("value")
        for key, item in request.items():  # activation metadata, as OpenWhisk's runtimes do
            if key != "value" and isinstance(item, (str, int, float)):
                os.environ["__OW_" + key.upper()] = str(item)
        if not self.native and isinstance(value, dict) and set(value) == {"context", "payload"}:
            return self.dispatch(value, openwhisk=True)
        ctx = {"deadline": request["deadline"]} if "deadline" in request else {}
        result, error, out, err = self.invoke(ctx, value if value is not None else {})
        _write_activation_logs(out, err)
        if error is not None:
            return json.dumps({"error": error["message"]})
        if not isinstance(result, dict):
            return json.dumps({"error": "the action did not return a dictionary"})
        text, error = encode_result(result, "the action's result")
        return json.dumps({"error": error["message"]}) if error else text

    def openwhisk_init(self, request):
        """``POST /init``: apply the action's environment and, for a native action, load
        its code. Accepted once, as OpenWhisk's own runtimes do."""
        if self.initialized:
            return 403, '{"error": "Cannot initialize the action more than once."}'
        value = request.get("value")
        if not isinstance(value, dict):
            value = {}
        if self.stem_dir is not None:
            return self.stem_init(value)
        env = value.get("env")
        if isinstance(env, dict):
            for key, item in env.items():
                os.environ[str(key)] = item if isinstance(item, str) else json.dumps(item)
        if self.handler is None:
            try:
                main = load_action(value)
            except HandlerError as exc:
                sys.stderr.write("dispatch-runtime: init error: %s\n" % exc)
                _write_activation_logs((b"", False), (b"", False))
                return 502, json.dumps({"error": str(exc)})
            self.handler = lambda ctx, payload: main(payload)
            self.native = True
        self.initialized = True
        return '{"ok": true}'

    def stem_init(self, value):
        """A stem cell's ``/init``: load ``value["main"]`` (``MOD.FUNC``) from its directory."""
        try:
            os.chdir(self.stem_dir)
            self.handler = load_handler(str(value.get("main") or ""), self.stem_dir)
        except (HandlerError, OSError) as exc:
            reason = str(exc).replace("\n", " ")
            sys.stderr.write("dispatch-runtime: handler error: %s\n" % reason)
            return 502, json.dumps({"error": reason})
        self.stem_dir = None
        self.initialized = True
        return '{"ok": true}'

    def respond(self, method, path, body):
        """Route one request: ``(status, JSON text)``."""
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return (200, "{}") if method in ("GET", "HEAD") else (405, '{"error": "use GET"}')
        routes = {"/": self.dispatch, "/run": self.openwhisk_run, "/init": self.openwhisk_init}
        route = routes.get(path)
        if route is None:
            return 404, json.dumps({"error": "no route %s" % path})
        if method != "POST":
            return 405, '{"error": "use POST"}'
        try:
            request = json.loads(body) if body else {}
        except ValueError as exc:
            return 400, json.dumps({"error": "request body is not JSON: %s" % exc})
        if not isinstance(request, dict):
            return 400, '{"error": "request body must be a JSON object"}'
        answer = route(request)
        return answer if isinstance(answer, tuple) else (200, answer)


def _write_activation_logs(out, err):
    """Write one activation's captured output to fds 1 and 2, each ended by OpenWhisk's
    sentinel line (its invoker reads an activation's logs up to it)."""
    for fd, (data, truncated) in ((1, out), (2, err)):
        if data and not data.endswith(b"\n"):
            data += b"\n"
        if truncated:
            data += TRUNCATED_MARK.encode() + b"\n"
        os.write(fd, data + OPENWHISK_SENTINEL)


def load_action(value):
    """An OpenWhisk native action's entry function, from ``/init``'s ``value``.

    Unpacks ``code`` (a base64 zip when ``binary``, else the text of ``__main__.py``)
    into a new directory, activates its ``virtualenv/`` as OpenWhisk's launcher does
    (through ``virtualenv/bin/activate_this.py``) and imports ``__main__.py``.
    """
    import tempfile
    code = value.get("code")
    if not code or not isinstance(code, str):
        raise HandlerError("Missing main/no code to execute.")
    directory = tempfile.mkdtemp(prefix="dispatch-action-")
    if value.get("binary"):
        try:
            with zipfile.ZipFile(io.BytesIO(base64.b64decode(code, validate=True))) as archive:
                archive.extractall(directory)  # extractall drops ".." and absolute paths
        except (ValueError, zipfile.BadZipFile) as exc:
            raise HandlerError("the action's code is not a base64 zip: %s" % exc) from None
    else:
        with open(os.path.join(directory, "__main__.py"), "w", encoding="utf-8") as f:
            f.write(code)
    entry = os.path.join(directory, "__main__.py")
    if not os.path.isfile(entry):
        raise HandlerError("Zip file does not include __main__.py")
    venv = os.path.join(directory, "virtualenv")
    if os.path.isdir(venv):
        activate = os.path.join(venv, "bin", "activate_this.py")
        if not os.path.isfile(activate):
            raise HandlerError("Invalid virtualenv. Zip file does not include /virtualenv/bin/activate_this.py")
        with open(activate) as f:
            exec(compile(f.read(), activate, "exec"), {"__file__": activate})
    os.chdir(directory)
    sys.path.insert(0, directory)
    try:
        spec = importlib.util.spec_from_file_location("main__", entry)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as exc:
        raise HandlerError("%s while importing the action: %s" % (type(exc).__name__, exc)) from None
    name = value.get("main") or "main"
    func = getattr(module, name, None)
    if not callable(func):
        raise HandlerError("the action has no function %r" % name)
    return func


class Connection:
    """One client connection: buffers bytes, answers each complete request in order."""

    def __init__(self, sock, runtime):
        self.sock = sock
        self.runtime = runtime
        self.buf = b""

    def feed(self):
        """Read what arrived and answer complete requests; False once the connection ends."""
        data = self.sock.recv(262144)
        if not data:
            return False
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    return self._send(431, '{"error": "request head too large"}', close=True)
                return True
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, val = line.partition(":")
                headers[name.strip().lower()] = val.strip()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                return self._send(400, '{"error": "malformed request line"}', close=True)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                return self._send(411, '{"error": "send a Content-Length"}', close=True)
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return self._send(400, '{"error": "bad Content-Length"}', close=True)
            start = end + 4
            if len(self.buf) < start + length:
                return True  # the rest of the body is still on its way
            body, self.buf = self.buf[start:start + length], self.buf[start + length:]
            conn_header = headers.get("connection", "").lower()
            close = conn_header == "close" or (parts[2] == "HTTP/1.0" and conn_header != "keep-alive")
            try:
                status, text = self.runtime.respond(parts[0], parts[1], body)
            except Exception as exc:  # a bug here must not take the server down
                status, text = 500, json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)})
            if not self._send(status, text, close, head_only=parts[0] == "HEAD"):
                return False

    def _send(self, status, text, close=False, head_only=False):
        body = text.encode("utf-8")
        head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
            status, _REASONS.get(status, "Error"), len(body), "Connection: close\r\n" if close else "")
        self.sock.sendall(head.encode("latin-1") + (b"" if head_only else body))
        return not close


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave the accept loop between requests."""


class Server:
    """A single-threaded accept loop: one request at a time, any number of connections."""

    def __init__(self, listener, runtime, tcp, lifeline_fd=None):
        self.listener = listener
        self.runtime = runtime
        self.tcp = tcp
        self.lifeline_fd = lifeline_fd
        self.busy = False
        self.stopping = False

    def on_sigterm(self, signum, frame):
        self.stopping = True
        if not self.busy:
            raise _Stop()

    def serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        if self.lifeline_fd is not None:  # EOF here means the driver went away
            sel.register(self.lifeline_fd, selectors.EVENT_READ, "lifeline")
        try:
            while not self.stopping:
                for key, _ in sel.select():
                    if key.data == "lifeline":
                        return
                    if key.data == "accept":
                        try:
                            sock, _ = self.listener.accept()
                        except BlockingIOError:
                            continue
                        sock.setblocking(True)
                        if self.tcp:
                            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        sel.register(sock, selectors.EVENT_READ, Connection(sock, self.runtime))
                        continue
                    conn = key.data
                    self.busy = True
                    try:
                        alive = conn.feed()
                    except OSError:
                        alive = False
                    finally:
                        self.busy = False
                    if not alive:
                        sel.unregister(conn.sock)
                        conn.sock.close()
        except _Stop:
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description="Dispatch Python function server")
    parser.add_argument("--handler", help="MODULE.FUNCTION (none: an OpenWhisk native action, loaded by POST /init)")
    parser.add_argument("--stem", action="store_true",
                        help="a stem cell: POST /init names the handler to load from --dir")
    parser.add_argument("--dir", default="/function", help="the function's source directory")
    parser.add_argument("--socket", help="listen on this unix socket instead of TCP")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--ready-fd", type=int, help="write one line here once serving")
    parser.add_argument("--lifeline-fd", type=int, help="exit when this fd reaches EOF")
    parser.add_argument("--memory-mb", type=int, help="RLIMIT_AS for this process and its children")
    parser.add_argument("--file-mb", type=int, help="RLIMIT_FSIZE (largest file written)")
    args = parser.parse_args(argv)

    sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE; /function may be read-only
    try:  # line by line, so print() and os.write(1, ...) stay in order in the captured log
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    _set_limits(args.memory_mb, args.file_mb)
    try:
        handler = None
        if args.handler:
            os.chdir(args.dir)
            handler = load_handler(args.handler, os.path.abspath(args.dir))
    except (HandlerError, OSError) as exc:
        sys.stderr.write("dispatch-runtime: handler error: %s\n" % str(exc).replace("\n", " "))
        sys.stderr.flush()
        return EXIT_HANDLER_ERROR

    if args.socket:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(args.socket)
        listener.listen(16)
    else:
        listener = socket.create_server(("0.0.0.0", args.port), backlog=64)
    listener.setblocking(False)
    capture = Capture(os.path.dirname(args.socket) if args.socket else None)
    stem_dir = os.path.abspath(args.dir) if args.stem and not args.handler else None
    server = Server(listener, Runtime(handler, capture, stem_dir), tcp=not args.socket,
                    lifeline_fd=args.lifeline_fd)
    signal.signal(signal.SIGTERM, server.on_sigterm)
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    server.serve()
    if args.socket:
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    _flush_std()
    # threads the function left running must not keep a stopped server alive
    os._exit(0)


def _set_limits(memory_mb, file_mb):
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    if file_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))


if __name__ == "__main__":
    sys.exit(main())
