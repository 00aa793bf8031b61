"""``python -m pydelta`` and the ``pydelta`` command.

``pydelta serve`` (the far end of ``pydelta sync``, started over ssh for
every sync) runs without loading the command-line layer: that saves about
0.2 s of start-up per sync. Everything else goes to :mod:`pydelta.cli`.
"""

import sys


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        from pydelta.sync.server import serve_main

        sys.exit(serve_main())
    from pydelta.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
