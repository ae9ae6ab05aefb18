"""``python -m mingraph.cli``: the ``mingraph`` command (e.g. under ``torchrun``)."""

from mingraph.cli.group import main

if __name__ == "__main__":  # pragma: no cover
    main()
