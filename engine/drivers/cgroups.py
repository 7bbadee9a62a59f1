"""A cgroup per function instance (cgroup v1): real limits on processes, memory and CPU.

rlimits cannot do this for a sandboxed function: it runs as the host's uid 0 (without
capabilities), and ``RLIMIT_NPROC`` never applies to uid 0; ``RLIMIT_AS`` counts
address space, of which V8 reserves gigabytes it never uses. An instance's cgroups:

* ``pids``: at most ``pids.max`` tasks (processes *and* threads, bwrap's two included)
  in the whole instance, so a fork bomb stops there;
* ``memory``: ``memory.limit_in_bytes`` (and the swap one) over everything the
  instance's processes use, its private /tmp's pages included; past it the kernel's
  OOM killer kills inside the instance only;
* ``cpu`` (when mounted): a scheduling group of its own, so that CPU is shared between
  instances rather than between processes (64 spinning processes get one share).

They are made below the driver's own cgroup in each hierarchy
(``<mount>/<own path>/dispatch/<instance>``), so limits put on the driver bound its
functions too, and ``dispatch/`` can hold a limit for all of them. A process joins its
cgroups before it execs anything of the function's (see :mod:`.instance`). An instance's
cgroups are removed when it stops; those of a driver that was killed are swept (empty,
older than a minute) when a driver starts or closes.

Where there are none to write (not root, or cgroup v2 only: not supported yet),
:meth:`Cgroups.detect` says why and the driver goes without, after one warning.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import time
import uuid

log = logging.getLogger("dispatch.driver.cgroups")

#: controllers an instance cannot do without, and one that only improves fairness
REQUIRED = ("pids", "memory")
OPTIONAL = ("cpu",)
PARENT_NAME = "dispatch"
#: instance ids (see :mod:`.instance`): the only directories :meth:`Cgroups.sweep` removes
_INSTANCE_NAME = re.compile(r"[0-9a-f]{12}")
#: an empty instance cgroup this old belongs to no live instance
STALE_AFTER_S = 60.0


class CgroupsUnavailable(Exception):
    """This host gives the driver no writable cgroup v1 hierarchies; the message says why."""


def _mounts() -> dict[str, tuple[str, str]]:
    """``controller -> (mount point, root of the mounted subtree)`` of cgroup v1 mounts."""
    found: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
                continue
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space
            for option in tail[2].split(","):
                found.setdefault(option, (point, fields[3]))
    return found


def _own_paths() -> dict[str, str]:
    """``controller -> this process's cgroup path`` from ``/proc/self/cgroup``."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                if controller:
                    own[controller] = path
    return own


class Cgroups:
    """Where this driver makes instance cgroups: one parent directory per controller."""

    def __init__(self, parents: dict[str, str]):
        self.parents = parents

    @classmethod
    def detect(cls) -> Cgroups:
        """The parents below this process's own cgroups; :class:`CgroupsUnavailable` if none."""
        try:
            mounts, own = _mounts(), _own_paths()
        except OSError as exc:
            raise CgroupsUnavailable(f"cannot read this process's cgroups: {exc}") from None
        parents = {}
        for controller in REQUIRED + OPTIONAL:
            if controller not in mounts or controller not in own:
                if controller in REQUIRED:
                    raise CgroupsUnavailable(f"no cgroup v1 {controller!r} hierarchy (cgroup v2 is not supported)")
                continue
            point, root = mounts[controller]
            relative = os.path.relpath(own[controller], root) if own[controller].startswith(root) else "."
            parent = os.path.normpath(os.path.join(point, relative, PARENT_NAME))
            probe = os.path.join(parent, f"probe-{uuid.uuid4().hex[:8]}")
            try:  # writable only if a cgroup can be made and removed here
                os.makedirs(probe)
                os.rmdir(probe)
            except OSError as exc:
                if controller in REQUIRED:
                    raise CgroupsUnavailable(f"cannot create {controller} cgroups under {parent}: {exc}") from None
                continue
            parents[controller] = parent
        found = cls(parents)
        found.sweep()
        return found

    def create(self, name: str, *, max_tasks: int, memory_mb: int) -> InstanceCgroup:
        """Make the instance's cgroups with their limits; raises ``OSError``."""
        group = InstanceCgroup({c: os.path.join(parent, name) for c, parent in self.parents.items()})
        try:
            for path in group.paths.values():
                _make(path)
            _write(group.paths["pids"], "pids.max", max_tasks)
            memory = group.paths["memory"]
            _write(memory, "memory.limit_in_bytes", memory_mb << 20)
            if os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")):
                _write(memory, "memory.memsw.limit_in_bytes", memory_mb << 20)  # no swapping past it
        except OSError:
            group.remove()
            raise
        return group

    def sweep(self, older_than_s: float = STALE_AFTER_S) -> int:
        """Remove the empty instance cgroups a driver that died (SIGKILL) left behind.

        Only directories named like an instance and older than ``older_than_s``: a live
        instance's cgroups hold its processes within milliseconds of being made, and
        rmdir refuses a cgroup that holds any. Returns how many were removed.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for parent in self.parents.values():
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                path = os.path.join(parent, name)
                try:
                    if _INSTANCE_NAME.fullmatch(name) and os.stat(path).st_mtime < cutoff:
                        os.rmdir(path)
                        removed += 1
                except OSError:  # in use (EBUSY), or gone already
                    pass
        if removed:
            log.info("cgroup.swept count=%d", removed)
        return removed

    def close(self) -> None:
        """Remove the parents if no instance uses them any more (another driver may)."""
        self.sweep()
        for parent in self.parents.values():
            try:
                os.rmdir(parent)
            except OSError:
                pass


class InstanceCgroup:
    """The cgroups of one instance, one directory per controller."""

    def __init__(self, paths: dict[str, str]):
        self.paths = paths
        #: ``pids.events``, opened once: it is read after every run, with one ``pread``
        #: (a cgroup file is made anew by each read from its start)
        self._task_events: int | None = None

    def add(self, pid: int) -> None:
        """Move a process (not yet running anything of the function's) into every cgroup."""
        for path in self.paths.values():
            _write(path, "cgroup.procs", pid)

    def reached_task_limit(self) -> bool:
        """Whether a fork or a new thread was ever refused for reaching ``pids.max``."""
        if self._task_events is None:
            try:
                self._task_events = os.open(os.path.join(self.paths["pids"], "pids.events"),
                                            os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
        try:
            data = os.pread(self._task_events, 4096, 0)
        except OSError:  # the cgroup was removed
            return False
        return _value(data, "max") > 0

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of the instance."""
        return _counter(self.paths["memory"], "memory.oom_control", "oom_kill") > 0

    def kill_all(self) -> None:
        """SIGKILL every process in the instance (v1 has no ``cgroup.kill``)."""
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self, within_s: float = 2.0) -> bool:
        """Kill what is left and remove the directories; False if some stayed busy."""
        if self._task_events is not None:
            os.close(self._task_events)
            self._task_events = None
        deadline = time.monotonic() + within_s
        pending = [p for p in self.paths.values() if os.path.isdir(p)]
        while pending:
            self.kill_all()  # a fork bomb's children that outlived the sandbox's PID 1
            still = []
            for path in pending:
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        log.warning("cgroup.remove_failed path=%s error=%r", path, exc.strerror)
                        continue
                    still.append(path)  # tasks are still exiting
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    log.warning("cgroup.busy paths=%s", ",".join(pending))
                    return False
                time.sleep(0.002)
        return True

    def _pids(self) -> list[int]:
        try:
            with open(os.path.join(self.paths["pids"], "cgroup.procs"), encoding="ascii") as f:
                return [int(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def _make(path: str, attempts: int = 3) -> None:
    """mkdir, with the parent: another driver closing may remove an empty parent at any time."""
    for attempt in range(attempts):
        try:
            os.makedirs(path)
            return
        except FileNotFoundError:  # the parent went between its mkdir and ours
            if attempt == attempts - 1:
                raise


def _write(directory: str, name: str, value: int) -> None:
    with open(os.path.join(directory, name), "w", encoding="ascii") as f:
        f.write(str(value))


def _counter(directory: str, name: str, key: str) -> int:
    """One ``key value`` line of a cgroup file (0 if the file or the key is missing)."""
    try:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    return _value(data, key)


def _value(data: bytes, key: str) -> int:
    """The value of ``key`` in a cgroup file's ``key value`` lines (0 if missing)."""
    wanted = key.encode("ascii")
    for line in data.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == wanted:
            try:
                return int(parts[1])
            except ValueError:
                return 0
    return 0


__all__ = ["Cgroups", "CgroupsUnavailable", "InstanceCgroup"]
