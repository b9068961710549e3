"""A real S3 API server for tests: moto's server over HTTP on a free local port, not a mock.

boto3 talks to it exactly as to AWS S3 (signed requests, XML answers, pagination), so the
object store's S3 code runs unchanged; only `S3_ENDPOINT_URL` differs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.processes import free_port

# moto accepts any credentials; boto3 still needs some to sign with.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def new_bucket(self) -> str:
        """A fresh, empty bucket: each test owns its objects."""
        import boto3

        name = f"test-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint_url).create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """moto's threaded server; the AWS credential variables set while it runs."""
    from moto.server import ThreadedMotoServer

    previous = {name: os.environ.get(name) for name in S3_CREDENTIALS}
    os.environ.update(S3_CREDENTIALS)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
