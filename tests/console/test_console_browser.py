"""The console in a real browser (headless Chromium through Selenium) against a real API
process, worker and Stripe fake: sign in, replay a failed event until it reads `processed`,
submit a dispute's evidence through the form and find it in the audit trail, a POST without
the CSRF token refused, a stranger sent to the login page, and a screenshot of every page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.console.conftest import AdminLogin, create_admin, open_dispute
from tests.support.browser import headless_chromium, png_distinct_bytes
from tests.support.events import make_event, store_directly
from tests.support.processes import ApiProcess
from tests.support.stripe_events import dispute_row, using_stripe
from tests.support.stripe_fake import TEST_KEY, StripeFake

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WAIT_SECONDS = 20


def _shows(browser: WebDriver, css: str, text: str) -> bool:
    """Whether an element matching `css` shows `text`. htmx and a redirect replace elements
    under the wait: one gone while it is read is skipped, and the wait reads again."""
    for element in browser.find_elements(By.CSS_SELECTOR, css):
        try:
            if text in element.text:
                return True
        except StaleElementReferenceException:
            continue
        except WebDriverException as exc:
            # Chromium's own words for the same thing, when a navigation replaced the node
            # between finding it and reading it.
            if "does not belong to the document" not in (exc.msg or ""):
                raise
    return False


@dataclass
class Console:
    browser: WebDriver
    url: str
    login: AdminLogin
    fake: StripeFake

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)

    def wait_for(self, css: str, text: str) -> None:
        WebDriverWait(self.browser, WAIT_SECONDS).until(lambda b: _shows(b, css, text))

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.browser.save_screenshot(str(path))
        assert png_distinct_bytes(path.read_bytes()) > 40, f"{name}.png looks blank"
        return path


@pytest.fixture(scope="module")
def console_browser(_worker_process) -> Iterator[Console]:
    """One API process on the Stripe fake, one browser, one admin, for the whole module."""
    _worker_process.ensure_running()
    with StripeFake().running() as fake, using_stripe(fake.client()):
        api = ApiProcess(env={"STRIPE_API_BASE": fake.url, "STRIPE_SECRET_KEY_TEST": TEST_KEY})
        api.start()
        try:
            with headless_chromium() as browser:
                yield Console(browser=browser, url=api.url, login=create_admin(), fake=fake)
        finally:
            api.stop()


def sign_in(console: Console) -> None:
    b = console.browser
    b.find_element(By.ID, "email").send_keys(console.login.email)
    b.find_element(By.ID, "password").send_keys(console.login.password)
    b.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def test_a_stranger_signs_in_and_replays_a_failed_event(console_browser):
    c, b = console_browser, console_browser.browser
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")

    c.open("/console/events")
    assert "/console/login" in b.current_url  # a stranger is sent to sign in
    c.screenshot("login")
    sign_in(c)
    c.wait_for("h1", "Events")  # back where the stranger was going

    Select(b.find_element(By.ID, "f-status")).select_by_value("failed")
    b.find_element(By.ID, "f-type").send_keys("invoice.paid")
    b.find_element(By.CSS_SELECTOR, "form.filters button").click()
    c.wait_for("table", event["id"])
    c.screenshot("events")
    b.find_element(By.LINK_TEXT, event["id"]).click()
    c.wait_for("#event-status", "failed")
    b.find_element(By.LINK_TEXT, "Replay…").click()
    c.wait_for("h1", f"Replay {event['id']}?")
    b.find_element(By.XPATH, "//button[text()='Replay the event']").click()

    # htmx polls the status block until the worker is done; no reload needed.
    c.wait_for("#event-status .status", "processed")
    c.screenshot("event-detail")
    c.open("/console/audit?action=replay")
    c.wait_for("table", event["id"])
    row = b.find_element(By.XPATH, f"//tr[td/a[text()='{event['id']}']]").text
    assert c.login.email in row


def test_evidence_submitted_through_the_form_lands_in_the_audit_trail(console_browser):
    c, b = console_browser, console_browser.browser
    ids = open_dispute(c.fake)

    c.open("/console/disputes")
    if "/console/login" in b.current_url:
        sign_in(c)
    c.wait_for("table", ids.dispute)
    assert "3d 0h left" in b.find_element(By.XPATH, f"//tr[td/a[text()='{ids.dispute}']]").text
    c.screenshot("disputes")
    b.find_element(By.LINK_TEXT, ids.dispute).click()
    c.wait_for("h1", ids.dispute)
    c.screenshot("dispute-detail")
    text = b.find_element(By.ID, "ev-uncategorized_text")
    # The form starts from the evidence draft: its invoices are already there.
    assert "Invoice" in (text.get_attribute("value") or "")
    text.clear()
    text.send_keys("The customer used 4,000 credits after paying.")
    b.find_element(By.XPATH, "//button[@value='submit']").click()
    c.wait_for("h1", "Submit the evidence")
    b.find_element(By.XPATH, "//button[text()='Submit the evidence']").click()
    c.wait_for(".flash", "Evidence submitted to the bank.")
    c.wait_for("h1", "under_review")

    assert dispute_row(ids.dispute).status == "under_review"
    assert c.fake.disputes[ids.dispute]["evidence"]["uncategorized_text"].startswith("The customer")
    c.open(f"/console/audit?target={ids.dispute}")
    row = b.find_element(By.XPATH, f"//tr[td/a[text()='{ids.dispute}']]").text
    assert "evidence_submitted" in row and c.login.email in row
    c.screenshot("audit")

    c.open(f"/console/customers?q={ids.customer}")
    c.wait_for("h1", ids.customer)
    c.wait_for("#main", "dispute_hold")
    c.screenshot("customer-detail")


def test_a_post_without_the_csrf_token_is_refused(console_browser):
    c, b = console_browser, console_browser.browser
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")
    c.open("/console/")
    if "/console/login" in b.current_url:
        sign_in(c)
    c.wait_for("h1", "Overview")

    # The session cookie goes along (same origin); only the token is missing.
    status = b.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/console/events/{event['id']}/replay', {{method: 'POST',"
        " body: new URLSearchParams({confirm: 'yes'})}).then(r => done(r.status));"
    )

    assert status == 403
    c.open(f"/console/events/{event['id']}")
    c.wait_for("#event-status .status", "failed")


def test_every_page_renders_and_signing_out_locks_it(console_browser):
    c, b = console_browser, console_browser.browser
    c.open("/console/")
    if "/console/login" in b.current_url:
        sign_in(c)
    c.wait_for("h2", "Events per minute")
    assert b.find_element(By.CSS_SELECTOR, "svg.chart")
    c.screenshot("overview")
    for path, heading, name in (
        ("/console/customers", "Customers", "customers"),
        ("/console/reconciliation", "Reconciliation", "reconciliation"),
    ):
        c.open(path)
        c.wait_for("h1", heading)
        c.screenshot(name)

    b.find_element(By.XPATH, "//button[text()='Sign out']").click()
    c.wait_for("h1", "Sign in")
    c.open("/console/disputes")
    assert "/console/login" in b.current_url
