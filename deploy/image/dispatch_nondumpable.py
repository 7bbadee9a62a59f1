"""Every Python process of Dispatch's image makes itself non-dumpable as it starts.

In the image, functions run as plain processes of the worker's user inside the worker's
pod (bubblewrap cannot make its sandbox in an unprivileged container). A non-dumpable
process's ``/proc/<pid>`` entries (``environ``, ``mem``, ``fd``, ...) belong to root and it
cannot be ptrace-attached, so a function reads neither the worker's environment (its
``DISPATCH_SECRET_KEY``) nor the memory of another Python function's server. Installed
into the virtualenv's site-packages by deploy/Containerfile with a ``.pth`` file that
imports it (Debian's own ``sitecustomize`` shadows one of ours); a no-op where prctl
fails.
"""

import ctypes

PR_SET_DUMPABLE = 4
try:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
except (OSError, AttributeError):
    pass
