"""Object storage: one interface, a POSIX and an S3 implementation."""

from agola.storage.objectstorage.base import ObjectInfo, ObjectReader, ObjectStorage

__all__ = ["ObjectInfo", "ObjectReader", "ObjectStorage"]
