"""Where the platform keeps files it must still have years later: one small interface, two stores.

`open_store(url)` picks the store from a URL:
- `file://./var/invoices` (relative to the working directory) or `file:///srv/invoices`: a
  local directory; each write lands in a temporary file renamed into place, so a reader never
  sees half an object.
- `s3://bucket/prefix`: an S3 bucket through boto3, with credentials from boto3's usual chain
  (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a profile, an instance role). `endpoint_url`
  (the `S3_ENDPOINT_URL` setting) points it at any S3-compatible server (MinIO, Ceph, R2...).

Keys are `/`-separated relative paths (`in_1234.pdf`, `webhook_events/2025-01.jsonl.gz`); a key
that would leave the store (`..`, an absolute path, a backslash) is refused in both stores alike.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

STORE_SCHEMES = ("file", "s3")


class ObjectNotFound(LookupError):
    """No object is stored under that key."""


class ObjectStore(Protocol):
    """A flat namespace of immutable-ish byte objects addressed by key."""

    url: str

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store `data` under `key`, replacing what was there."""

    def get(self, key: str) -> bytes:
        """The object's bytes; `ObjectNotFound` when there is none."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with `prefix`, in key order."""


def check_store_url(url: str) -> None:
    """Raise ValueError (one sentence, no variable name) when `url` names no usable store."""
    parts = urlsplit(url)
    if parts.scheme not in STORE_SCHEMES:
        raise ValueError("must start with file:// or s3://")
    if parts.scheme == "s3" and not parts.netloc:
        raise ValueError("must name a bucket, as in s3://bucket/prefix")
    if parts.scheme == "file" and not (parts.netloc + parts.path).strip("/"):
        raise ValueError("must name a directory, as in file://./var/invoices")


def open_store(url: str, *, endpoint_url: str = "") -> ObjectStore:
    """The store a URL names (see the module docstring); ValueError for any other URL."""
    check_store_url(url)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Store(
            bucket=parts.netloc, prefix=parts.path.strip("/"), endpoint_url=endpoint_url, url=url
        )
    # `file://./var/x` puts "." in the netloc; `file:///abs` leaves it empty; both read as paths.
    return LocalStore(Path(parts.netloc + parts.path), url=url)


def checked_key(key: str) -> str:
    """The key itself, or ValueError when it could name something outside the store."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a store key: {key!r}")
    return key


class LocalStore:
    """Objects as files under one directory (created on the first write)."""

    def __init__(self, root: Path, *, url: str) -> None:
        self.root = root
        self.url = url

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target then rename: readers and a crash never see a partial object.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )
        return iter(sorted(key for key in keys if key.startswith(prefix)))


class S3Store:
    """Objects in one bucket, under an optional key prefix."""

    def __init__(self, *, bucket: str, prefix: str, endpoint_url: str, url: str) -> None:
        import boto3  # only a deployment that archives to S3 pays for importing it
        from botocore.config import Config

        self.bucket = bucket
        self.page_size = 1000  # S3's own maximum; tests lower it to cross a page
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = url
        # Standard mode retries throttling and 5xx with backoff; the caller's own retry (a
        # Celery task's) covers an outage longer than that.
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def _object_key(self, key: str) -> str:
        return self.prefix + checked_key(key)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._object_key(key), Body=data, ContentType=content_type
        )

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except self.client.exceptions.NoSuchKey:
            raise ObjectNotFound(key) from None
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            # HEAD has no body, so a missing object reads as a bare 404, not NoSuchKey.
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + prefix,
            PaginationConfig={"PageSize": self.page_size},
        ):
            for item in page.get("Contents", []):
                yield item["Key"].removeprefix(self.prefix)
