"""The package version, in a module of its own so that modules can record it without importing
the package (whose public names load :mod:`mingraph.api`)."""

__version__ = "0.1.0"
