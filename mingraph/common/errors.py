"""The one exception type users see for bad input: it names the file, the field and what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input data; the message names the source, the field and what was expected."""

    def __init__(self, source: object, field: str, problem: str):
        self.source = str(source)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.source}: {field}: {problem}")

    def __reduce__(self):
        # so that worker processes can send it back (its __init__ takes three arguments)
        return (InputError, (self.source, self.field, self.problem))


def import_extra(module: str, hint: str):
    """Import an optional dependency (an extra), or raise InputError whose message is ``hint`` (what
    to install)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(module, "import", hint) from None
