"""The plan catalogue: plans with their monthly credits, one-time credit packs, and the Stripe
price ids (from settings) that identify them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.settings import PAID_PLANS, ConfigurationError, Settings

SHIPPED_PLANS_FILE = Path(__file__).with_name("plans.toml")
FREE_PLAN = "free"


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    monthly_credits: int
    credits_low_threshold: int
    price_id: str | None  # None for `free`, or a paid plan whose price is not configured


@dataclass(frozen=True, slots=True)
class CreditPack:
    id: str
    name: str
    credits: int
    amount: int  # in the currency's minor units
    currency: str


@dataclass(frozen=True, slots=True)
class Catalogue:
    plans: dict[str, Plan]
    packs: dict[str, CreditPack]

    def plan(self, plan_id: str) -> Plan | None:
        return self.plans.get(plan_id)

    def plan_for_price(self, price_id: str | None) -> Plan | None:
        """The plan a Stripe price (or legacy plan) id pays for; None if it is not ours."""
        if not price_id:
            return None
        return next((p for p in self.plans.values() if p.price_id == price_id), None)

    def pack(self, pack_id: str | None) -> CreditPack | None:
        return self.packs.get(pack_id) if pack_id else None

    def monthly_credits(self, plan_id: str | None) -> int:
        plan = self.plans.get(plan_id) if plan_id else None
        return plan.monthly_credits if plan else 0


def load_catalogue(settings: Settings) -> Catalogue:
    """Read PLANS_FILE (or the shipped one); a file that cannot be used is a ConfigurationError."""
    path = Path(settings.plans_file) if settings.plans_file else SHIPPED_PLANS_FILE
    try:
        data = tomllib.loads(path.read_text())
        plans = {
            plan_id: Plan(
                id=plan_id,
                name=str(entry["name"]),
                monthly_credits=int(entry["monthly_credits"]),
                credits_low_threshold=int(entry.get("credits_low_threshold", 0)),
                price_id=settings.price_id(plan_id),
            )
            for plan_id, entry in data["plans"].items()
        }
        packs = {
            pack_id: CreditPack(
                id=pack_id,
                name=str(entry["name"]),
                credits=int(entry["credits"]),
                amount=int(entry["amount"]),
                currency=str(entry.get("currency", "usd")).lower(),
            )
            for pack_id, entry in data.get("packs", {}).items()
        }
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"PLANS_FILE {path} cannot be used: {exc}.") from None
    missing = [p for p in (FREE_PLAN, *PAID_PLANS) if p not in plans]
    if missing:
        raise ConfigurationError(f"PLANS_FILE {path} lacks the plans {', '.join(missing)}.")
    return Catalogue(plans=plans, packs=packs)


@lru_cache(maxsize=1)
def get_catalogue() -> Catalogue:
    from core.settings import get_settings

    return load_catalogue(get_settings())
