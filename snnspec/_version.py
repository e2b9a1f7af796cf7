"""The package version, in a module of its own so that generated-code headers need no other import."""

__version__ = "0.1.0"
