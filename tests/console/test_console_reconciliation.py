"""Starting a reconciliation run and a dry run from the console: both go to the worker, are
audited, and their pages show what came back. The run's worker has no Stripe key here, so
both end `failed` naming the missing variable: what is proved is the path, not the compare
(tests/reconciliation covers that)."""

from __future__ import annotations

import re
import time

from tests.console.conftest import form_token, https_client, sign_in
from tests.support.stripe_fake import TEST_KEY, StripeFake


def wait_for_text(client, path: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        page = client.get(path).text
        if text in page:
            return page
        time.sleep(0.2)
    raise AssertionError(f"{path} never showed {text!r}:\n{page[-2000:]}")


def test_a_run_and_a_dry_run_start_from_the_console(admin_login, worker):
    with (
        StripeFake().running() as fake,
        https_client(stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY) as client,
    ):
        sign_in(client, admin_login)
        token = form_token(client.get("/console/reconciliation").text)

        dry = client.post("/console/reconciliation/dry-run", data={"csrf_token": token})
        assert re.fullmatch(r"/console/reconciliation/dry-runs/[0-9a-f-]{36}", dry.url.path)
        wait_for_text(client, dry.url.path, "STRIPE_SECRET_KEY_TEST")

        run = client.post("/console/reconciliation/start", data={"csrf_token": token})
        match = re.fullmatch(r"/console/reconciliation/runs/(\d+)", run.url.path)
        assert match, run.url
        page = wait_for_text(client, run.url.path, "status-failed")
        assert "No drift." in page

        trail = client.get("/console/audit").text
    assert f"run:{match.group(1)}" in trail
    assert "reconciliation_dry_run" in trail and "reconciliation_started" in trail


def test_without_stripe_the_console_says_so_and_starts_nothing(console):
    page = console.get("/console/reconciliation").text
    assert "STRIPE_SECRET_KEY_TEST" in page and "disabled" in page

    refused = console.post("/console/reconciliation/start", data={"csrf_token": form_token(page)})

    assert refused.status_code == 503
