"""The bubblewrap command line that confines one function instance.

What the function sees: a read-only ``/usr`` (and the ``/lib``, ``/bin`` links), a few
files of ``/etc``, the interpreter's installation read-only at its own path, its source
read-only at ``/function``, the runtime server read-only at ``/opt/dispatch/server.py``
(``server.js`` for Node.js), its instance directory (socket and log files) read-write
at ``/run/dispatch``, a private tmpfs ``/tmp`` of bounded size (the only other writable
place: the root is read-only), its own ``/proc`` and ``/dev``; no network (a private,
empty network namespace) unless its deployment allows it (then the host's), no
capabilities, its own user, PID, IPC and UTS namespaces, and no way to make further user
namespaces (in one, an unprivileged process would get capabilities back). Nothing else
of the host: not ``$DISPATCH_HOME``, not the project tree, not ``/root`` or ``/home``
(beyond the interpreter's own installation, which may live there, as pyenv's does, and
the directories of the function's image, read-only at their own paths).

Processes, memory and CPU are bounded by the instance's cgroups (:mod:`.cgroups`), not
here: bwrap has no such options.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

#: where the function's source, the server and the instance directory appear inside
FUNCTION_DIR = "/function"
SERVER_DIR = "/opt/dispatch"
#: the Python server; every server appears at ``SERVER_DIR/<its file name>``
SERVER_FILE = "/opt/dispatch/server.py"
INSTANCE_DIR = "/run/dispatch"

#: the parts of /etc a Python program commonly reads (never the whole of /etc: shadow,
#: service credentials and the like live there)
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
    "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/mime.types", "/etc/ssl/certs",
    "/etc/ca-certificates.conf", "/etc/alternatives",
)
#: top-level directories that are links into /usr on merged-/usr systems
USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


#: where to look for bubblewrap instead of ``bwrap`` on PATH (a path or a command name)
BWRAP_ENV = "DISPATCH_BWRAP"
#: how to get bubblewrap, for messages
INSTALL_HINT = "apt-get install bubblewrap"


def bwrap_path() -> str | None:
    """The bubblewrap executable (``$DISPATCH_BWRAP``, else ``bwrap`` on PATH), or None
    when it is not there."""
    return shutil.which(os.environ.get(BWRAP_ENV) or "bwrap")


def server_path(server_file: str) -> str:
    """Where the server file of the host appears inside the sandbox."""
    return f"{SERVER_DIR}/{os.path.basename(server_file)}"


@functools.lru_cache(maxsize=None)
def can_disable_userns(bwrap: str) -> bool:
    """Whether this bwrap can run a sandbox with nested user namespaces disabled.

    It needs a user namespace of its own, which some hosts refuse; checked once.
    """
    probe = [bwrap, "--unshare-user", "--disable-userns", "--ro-bind", "/", "/", "--", "true"]
    try:
        return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def interpreter_roots(interpreter: str) -> list[str]:
    """The directories an interpreter needs to run: its installation, plus a venv's own.

    ``/x/venv/bin/python`` (a link to ``/opt/py/bin/python3.11``) needs both ``/x/venv``
    and ``/opt/py``. Nothing under ``/usr`` is returned (it is bound anyway).
    """
    roots = []
    real = os.path.realpath(interpreter)
    roots.append(os.path.dirname(os.path.dirname(real)))  # <prefix>/bin/python3.x
    venv = os.path.dirname(os.path.dirname(os.path.abspath(interpreter)))
    cfg = os.path.join(venv, "pyvenv.cfg")
    if os.path.exists(cfg):
        roots.append(venv)
        with open(cfg, encoding="utf-8") as f:  # `home` is the base interpreter's bin dir
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    roots.append(os.path.dirname(os.path.realpath(value.strip())))
    out = []
    for root in roots:
        if root in ("/", "") or root == "/usr" or root.startswith("/usr/"):
            continue
        if root not in out:
            out.append(root)
    return out


def bwrap_command(
    *,
    bwrap: str,
    interpreter: str,
    src_dir: str,
    server_file: str,
    instance_dir: str,
    network: bool = False,
    tmp_size_mb: int | None = None,
    disable_userns: bool = True,
    ro_paths: tuple[str, ...] = (),
) -> list[str]:
    """The ``bwrap …`` prefix; append the command to run, using the paths above.

    :param network: share the host's network namespace instead of an empty one
    :param tmp_size_mb: the size of the private /tmp (None: the tmpfs default, half of RAM)
    :param disable_userns: forbid nested user namespaces (see :func:`can_disable_userns`)
    :param ro_paths: more host directories the function reads, bound read-only at their
        own paths (its image's: a Node.js image's ``node_modules``, say)
    """
    cmd = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        # as root bwrap keeps every capability unless told otherwise
        "--cap-drop", "ALL",
        "--hostname", "function",
        "--ro-bind", "/usr", "/usr",
        "--proc", "/proc",
        "--dev", "/dev",
    ]
    if disable_userns:
        cmd += ["--unshare-user", "--disable-userns"]
    if tmp_size_mb:
        cmd += ["--size", str(tmp_size_mb << 20)]
    # before the binds: a bind below /tmp (a venv there, say) must not be covered
    cmd += ["--tmpfs", "/tmp"]
    if network:
        cmd.append("--share-net")
    for path in USR_LINKS:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for path in ETC_FILES:
        cmd += ["--ro-bind-try", path, path]
    roots = interpreter_roots(interpreter)
    for root in roots + [p for p in ro_paths if p not in roots]:
        cmd += ["--ro-bind", root, root]
    cmd += [
        "--ro-bind", src_dir, FUNCTION_DIR,
        "--ro-bind", server_file, server_path(server_file),
        "--bind", instance_dir, INSTANCE_DIR,
        # the root itself is bwrap's scratch tmpfs: writable unless made read-only last
        "--remount-ro", "/",
        "--chdir", FUNCTION_DIR,
    ]
    return cmd
