"""oscar-py: event-driven file processing in containers, compatible with the OSCAR API."""

__version__ = "0.1.0"
