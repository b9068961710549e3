"""Which invoice PDF links may be fetched at all: decided before any request is made."""

from __future__ import annotations

import pytest

from core.pdf_download import DownloadPolicy, DownloadRefused, check_link
from core.settings import load_settings


def policy_of(**settings: object) -> DownloadPolicy:
    loaded = load_settings(**settings)
    return DownloadPolicy(
        allowed_hosts=loaded.invoice_pdf_hosts,
        schemes=loaded.invoice_pdf_schemes,
        max_bytes=loaded.invoice_pdf_max_bytes,
        timeout_seconds=loaded.invoice_pdf_timeout_seconds,
    )


def test_stripes_hosts_over_https_are_allowed_by_default():
    policy = policy_of(
        app_env="development", invoice_pdf_allowed_hosts="pay.stripe.com,files.stripe.com"
    )
    check_link("https://pay.stripe.com/invoice/acct_1/test_x/pdf?s=ap", policy)
    check_link("https://FILES.stripe.com/files/x", policy)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://pay.stripe.com/invoice/x/pdf", "scheme http"),
        ("https://evil.example.com/x.pdf", "host evil.example.com"),
        ("https://pay.stripe.com.evil.example.com/x.pdf", "host pay.stripe.com.evil"),
        ("https://169.254.169.254/latest/meta-data", "host 169.254.169.254"),
        ("file:///etc/passwd", "scheme file"),
        ("pay.stripe.com/x", "scheme (none)"),
    ],
)
def test_any_other_link_is_refused_before_a_request(url, reason):
    policy = policy_of(
        app_env="development", invoice_pdf_allowed_hosts="pay.stripe.com,files.stripe.com"
    )
    with pytest.raises(DownloadRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_link(url, policy)


def test_plain_http_is_allowed_only_in_tests():
    assert policy_of(app_env="test").schemes == ("https", "http")
    assert policy_of(app_env="development").schemes == ("https",)


@pytest.mark.parametrize("hosts", ["", "https://pay.stripe.com", "pay.stripe.com/invoice"])
def test_allowed_hosts_must_be_host_names(hosts):
    from core.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match="INVOICE_PDF_ALLOWED_HOSTS"):
        load_settings(invoice_pdf_allowed_hosts=hosts)
