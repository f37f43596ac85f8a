"""agola: a CI/CD platform re-implemented in asyncio Python."""

__version__ = "0.1.0"
