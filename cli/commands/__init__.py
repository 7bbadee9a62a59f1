"""One module per verb; :data:`COMMANDS` is what ``cli.main`` registers.

A verb that takes resource kinds (``create``, ``get``, ``update``, ``delete``) is a
:class:`cli.options.ResourceGroup`; a later resource (image, secret, api, subscription…)
adds its subcommand to each verb's group in that verb's module.
"""

from .create import create
from .delete import delete
from .emit import emit
from .exec import exec_
from .get import get
from .iam import iam
from .login import login, logout
from .redrive import redrive
from .status import status
from .up import up
from .update import update
from .version import version
from .workflows import cancel, exec_workflow, resume, suspend

COMMANDS = (create, get, update, delete, exec_, exec_workflow, cancel, suspend, resume,
            redrive, emit, up, login, logout, iam, version, status)
