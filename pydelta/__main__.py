"""``python -m pydelta``: the same as the ``pydelta`` command."""

from pydelta.cli import main

if __name__ == "__main__":
    main()
