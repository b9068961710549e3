"""The object store's contract, run on both stores: a local directory and S3 (moto's server)."""

from __future__ import annotations

import pytest

from core.object_store import LocalStore, ObjectNotFound, ObjectStore, S3Store, open_store
from tests.support.s3 import S3Server


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, monkeypatch) -> ObjectStore:
    if request.param == "file":
        # Relative, as the default `file://./var/invoices` is: it resolves against the cwd.
        monkeypatch.chdir(tmp_path)
        return open_store("file://./var/objects")
    server: S3Server = request.getfixturevalue("s3_server")
    return open_store(f"s3://{server.new_bucket()}/archive", endpoint_url=server.endpoint_url)


def test_put_then_get_exists_and_list(store):
    store.put("in_1.pdf", b"%PDF-1 one", content_type="application/pdf")
    store.put("months/2025-01.jsonl.gz", b"\x1f\x8b events")
    store.put("in_2.pdf", b"%PDF-1 two")

    assert store.get("in_1.pdf") == b"%PDF-1 one"
    assert store.get("months/2025-01.jsonl.gz") == b"\x1f\x8b events"
    assert store.exists("in_2.pdf")
    assert not store.exists("in_3.pdf")
    assert list(store.list()) == ["in_1.pdf", "in_2.pdf", "months/2025-01.jsonl.gz"]
    assert list(store.list("months/")) == ["months/2025-01.jsonl.gz"]


def test_put_replaces_the_object(store):
    store.put("in_1.pdf", b"first")
    store.put("in_1.pdf", b"second")
    assert store.get("in_1.pdf") == b"second"
    assert list(store.list()) == ["in_1.pdf"]


def test_a_missing_object_is_object_not_found(store):
    with pytest.raises(ObjectNotFound):
        store.get("in_missing.pdf")
    assert list(store.list()) == []


@pytest.mark.parametrize("key", ["../escape.pdf", "/etc/passwd", "a//b", "a/./b", "a\\b", ""])
def test_a_key_leaving_the_store_is_refused(store, key):
    with pytest.raises(ValueError, match="not a store key"):
        store.put(key, b"x")


def test_the_file_store_resolves_relative_urls_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("file://./var/invoices")
    store.put("in_1.pdf", b"%PDF")
    assert (tmp_path / "var" / "invoices" / "in_1.pdf").read_bytes() == b"%PDF"
    assert isinstance(store, LocalStore)
    absolute = open_store(f"file://{tmp_path}/abs")
    absolute.put("in_1.pdf", b"%PDF")
    assert (tmp_path / "abs" / "in_1.pdf").is_file()


def test_the_s3_store_keeps_objects_under_its_prefix(s3_server):
    import boto3

    bucket = s3_server.new_bucket()
    store = open_store(f"s3://{bucket}/invoices/2026", endpoint_url=s3_server.endpoint_url)
    assert isinstance(store, S3Store)
    store.put("in_1.pdf", b"%PDF")
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["invoices/2026/in_1.pdf"]


def test_the_s3_store_lists_past_one_page(s3_server):
    store = open_store(f"s3://{s3_server.new_bucket()}", endpoint_url=s3_server.endpoint_url)
    store.page_size = 2
    keys = [f"k/{n}" for n in range(5)]
    for key in keys:
        store.put(key, b"")
    assert list(store.list("k/")) == keys
