"""The ``dispatch`` command: the group, its global options and :func:`main`."""

from __future__ import annotations

import click

from .commands import COMMANDS
from .options import DispatchGroup, global_options


@click.group(cls=DispatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options()
def cli() -> None:
    """Dispatch: functions, runs and the rest of a serverless framework.

    Which server to talk to comes from flags, else DISPATCH_* environment variables,
    else the config file's current context (written by `dispatch up`).
    """


for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    """Console-script entry point (``dispatch``)."""
    cli(prog_name="dispatch")


if __name__ == "__main__":
    main()
