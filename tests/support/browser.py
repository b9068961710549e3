"""A headless Chromium for the console's browser tests: Debian's `chromium` and
`chromium-driver` (`.ci/run` installs them), driven by Selenium, with a fresh profile."""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# No sandbox (containers run as root), no GPU, and nothing that calls home during a test.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), (
            f"{binary} is missing: apt-get install chromium chromium-driver"
        )
    profile = tempfile.mkdtemp(prefix="console-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def png_distinct_bytes(png: bytes) -> int:
    """How many distinct byte values the image's (filtered) pixel data holds: a blank page
    filters to runs of zeros (a handful of values); a page with text and colours, to most of
    the 256. Read with the standard library alone."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    data, offset = b"", 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(data)))
