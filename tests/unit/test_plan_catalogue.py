"""The plan catalogue: the shipped plans and packs, price ids from the settings of the mode,
and a PLANS_FILE that cannot be used refused in one sentence naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.plans import SHIPPED_PLANS_FILE, Catalogue, load_catalogue
from core.settings import ConfigurationError, load_settings


@pytest.fixture
def catalogue() -> Catalogue:
    return load_catalogue(load_settings())


def test_the_shipped_plans_and_their_test_mode_prices(catalogue):
    assert sorted(catalogue.plans) == ["free", "pro", "starter", "team"]
    assert catalogue.plan("free").price_id is None
    assert catalogue.plan("pro").price_id == "price_pro_test"
    assert catalogue.plan_for_price("price_team_test").id == "team"
    credits = {plan_id: catalogue.monthly_credits(plan_id) for plan_id in catalogue.plans}
    assert credits == {"free": 0, "starter": 1000, "pro": 5000, "team": 20000}


def test_a_price_or_plan_that_is_not_ours_is_none(catalogue):
    assert catalogue.plan_for_price("price_someone_elses") is None
    assert catalogue.plan_for_price(None) is None
    assert catalogue.plan("enterprise") is None
    assert catalogue.monthly_credits("enterprise") == 0
    assert catalogue.monthly_credits(None) == 0


def test_live_mode_reads_the_live_prices():
    live = load_settings(
        app_env="test",
        stripe_test_mode=False,
        stripe_price_pro_live="price_pro_live",
        stripe_price_starter_live="",
    )
    catalogue = load_catalogue(live)
    assert catalogue.plan("pro").price_id == "price_pro_live"
    assert catalogue.plan_for_price("price_pro_test") is None
    assert catalogue.plan("starter").price_id is None  # not configured: matches no price


def test_packs_are_looked_up_by_their_id(catalogue):
    small = catalogue.pack("small")
    assert (small.credits, small.amount, small.currency) == (500, 900, "usd")
    assert catalogue.pack("huge") is None
    assert catalogue.pack(None) is None


def plans_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "plans.toml"
    path.write_text(text)
    return str(path)


def test_a_plans_file_without_a_paid_plan_is_refused(tmp_path):
    without_team = SHIPPED_PLANS_FILE.read_text().replace("[plans.team]", "[plans.teams]")
    path = plans_file(tmp_path, without_team)
    with pytest.raises(ConfigurationError) as refused:
        load_catalogue(load_settings(plans_file=path))
    assert str(refused.value) == f"PLANS_FILE {path} lacks the plans team."


@pytest.mark.parametrize(
    "text",
    [
        "[plans.free\nname = 'Free'",  # not TOML
        "[plans.free]\nname = 'Free'\n",  # no monthly_credits
        "[plans.free]\nname = 'Free'\nmonthly_credits = 'many'\n",
    ],
    ids=["not-toml", "missing-field", "not-a-number"],
)
def test_a_plans_file_that_cannot_be_read_is_refused_naming_it(tmp_path, text):
    path = plans_file(tmp_path, text)
    with pytest.raises(ConfigurationError) as refused:
        load_catalogue(load_settings(plans_file=path))
    message = str(refused.value)
    assert message.startswith(f"PLANS_FILE {path} cannot be used:")
    assert "\n" not in message


def test_a_missing_plans_file_is_refused_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigurationError, match="PLANS_FILE"):
        load_catalogue(load_settings(plans_file=path))
