"""The proven API versions: the fixtures' folders, the settings' default, and where another
version stands."""

from __future__ import annotations

import pytest

from billing.registry import HANDLERS
from core.settings import ConfigurationError, load_settings
from core.stripe_versions import NEWEST_PROVEN, OLDEST_PROVEN, VersionStanding, unproven_standing
from tests.support.stripe_events import API_VERSIONS, FIXTURES, has_fixture


def test_the_proven_range_is_the_fixtures_range():
    folders = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    assert folders == sorted(API_VERSIONS)
    assert (API_VERSIONS[0], API_VERSIONS[-1]) == (OLDEST_PROVEN, NEWEST_PROVEN)


def test_the_client_pins_the_newest_proven_version_unless_told_otherwise():
    assert load_settings().stripe_api_version == NEWEST_PROVEN
    assert load_settings(stripe_api_version="2025-09-30.clover").stripe_api_version == (
        "2025-09-30.clover"
    )


def test_a_malformed_pin_is_refused_naming_the_variable():
    with pytest.raises(ConfigurationError, match="STRIPE_API_VERSION"):
        load_settings(stripe_api_version="endive")


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_every_handled_type_has_a_fixture_in_every_proven_version(event_type, api_version):
    assert has_fixture(event_type, api_version), (
        f"add tests/fixtures/stripe/{api_version}/{event_type}.json (see its README)"
    )


@pytest.mark.parametrize(
    ("version", "standing"),
    [
        ("2017-08-15", None),
        ("2020-08-27", None),
        ("2025-03-31.basil", None),
        ("2026-10-28.endive", None),
        ("2017-06-05", VersionStanding.OLDER),
        ("2014-03-28", VersionStanding.OLDER),
        ("2026-11-25.endive", VersionStanding.NEWER),
        ("2027-03-31.fig", VersionStanding.NEWER),
        (None, VersionStanding.UNKNOWN),
        ("", VersionStanding.UNKNOWN),
        ("latest", VersionStanding.UNKNOWN),
    ],
)
def test_where_a_version_stands(version, standing):
    assert unproven_standing(version) == standing
