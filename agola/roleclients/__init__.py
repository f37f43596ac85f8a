"""Typed internal clients between roles (HTTP, also inside one process)."""
