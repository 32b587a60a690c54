"""The ``errstream`` console script: the command line when its extras are installed, one clear line if not.

The SDK alone (``pip install errstream``) carries no typer, rich or faust; the script must not answer that
with a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from errstream.cli import main as cli_main
    except ModuleNotFoundError as exc:
        sys.stderr.write(f"errstream: the command line needs more than the SDK ({exc.name} is missing); "
                         "install it with: pip install 'errstream[pipeline]' (or [local] for the embedded ClickHouse)\n")
        sys.exit(2)
    cli_main()
