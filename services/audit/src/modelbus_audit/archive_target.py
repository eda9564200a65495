"""Where the archive goes: the customer's S3-compatible bucket, and the object layout in it.

Settings (environment, prefix ``MODELBUS_AUDIT_ARCHIVE_``): ``BUCKET`` (no bucket: no
archive), ``PREFIX`` (default ``modelbus-audit``), ``ENDPOINT_URL`` (any S3-compatible
server; empty: AWS), ``REGION`` (default ``us-east-1``), and ``ACCESS_KEY_ID`` /
``SECRET_ACCESS_KEY`` (empty: boto3's own chain — ``AWS_*`` variables, a web identity, an
instance role). The credentials are never logged or shown: :class:`ArchiveTarget` prints
as its bucket and prefix only.

Layout, hive style (``key=value`` folders, so other tools see the partitions)::

    <prefix>/events/date=YYYY-MM-DD/tenant=<tenant>/part-<seq>.parquet
    <prefix>/manifests/date=YYYY-MM-DD/manifest-<seq>.json

``<seq>`` is the archive record's place in the archive chain (zero-padded to 8 digits); a
row without a tenant goes under ``tenant=__HIVE_DEFAULT_PARTITION__``; the tenant is
percent-encoded.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any, BinaryIO
from urllib.parse import quote

NO_TENANT = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class ArchiveTarget:
    bucket: str
    prefix: str = "modelbus-audit"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings) -> ArchiveTarget | None:
        """The target the audit settings name, or None when no bucket is set."""
        if not settings.audit_archive_bucket:
            return None
        return cls(settings.audit_archive_bucket, settings.audit_archive_prefix.strip("/"),
                   settings.audit_archive_endpoint_url or None, settings.audit_archive_region,
                   settings.audit_archive_access_key_id,
                   settings.audit_archive_secret_access_key.get_secret_value())

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @functools.cached_property
    def client(self) -> Any:
        import boto3

        credentials = {}
        if self.access_key_id and self.secret_access_key:
            credentials = {"aws_access_key_id": self.access_key_id,
                           "aws_secret_access_key": self.secret_access_key}
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            **credentials)

    def file_key(self, day: date, tenant: str | None, seq: int) -> str:
        folder = NO_TENANT if tenant is None else quote(tenant, safe="")
        return f"{self._root()}events/date={day.isoformat()}/tenant={folder}/part-{seq:08d}.parquet"

    def manifest_key(self, day: date, seq: int) -> str:
        return f"{self._root()}manifests/date={day.isoformat()}/manifest-{seq:08d}.json"

    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    async def put(self, key: str, body: bytes | BinaryIO) -> None:
        """Store ``body`` (bytes, or a binary file read from its current position) at ``key``."""
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=key, Body=body)

    def _body(self, key: str):
        """The object's streaming body, or None when it is missing (blocking)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            return None

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it is missing."""
        def read() -> bytes | None:
            body = self._body(key)
            return None if body is None else body.read()

        return await asyncio.to_thread(read)

    async def sha256(self, key: str) -> str | None:
        """The SHA-256 of the object as stored now (None: missing), read in chunks."""
        def digest() -> str | None:
            body = self._body(key)
            if body is None:
                return None
            hashed = hashlib.sha256()
            for chunk in body.iter_chunks(1 << 20):
                hashed.update(chunk)
            return hashed.hexdigest()

        return await asyncio.to_thread(digest)
