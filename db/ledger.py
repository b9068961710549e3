"""The credit ledger: append-only entries, one per (kind, source id); the balance is the sum."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.invoices import find_invoice_of_payment, paid_by
from db.locks import lock_customer
from db.models import Account, CreditEntry, CreditKind

GRANT_KINDS = (CreditKind.PLAN_CREDITS, CreditKind.PACK_CREDITS, CreditKind.UPGRADE_CREDITS)


def add_entry(
    session: Session,
    *,
    account_id: int,
    kind: CreditKind,
    source_id: str,
    amount: int,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
    stripe_invoice_id: str | None = None,
    stripe_event_id: str | None = None,
    description: str | None = None,
) -> CreditEntry | None:
    """Append an entry; None (and nothing written) if (kind, source id) is already there."""
    # The new row comes back from the insert itself (no second read of it).
    values = {
        "account_id": account_id,
        "kind": kind,
        "source_id": source_id,
        "amount": amount,
        "payment_intent_id": payment_intent_id,
        "charge_id": charge_id,
        "stripe_invoice_id": stripe_invoice_id,
        "stripe_event_id": stripe_event_id,
        "description": description,
    }
    params = {f"new_{column}": value for column, value in values.items()}
    return session.scalars(_ADD_ENTRY, params).one_or_none()


def find_entry(session: Session, *, kind: CreditKind, source_id: str) -> CreditEntry | None:
    return session.scalar(_FIND_ENTRY, {"kind": kind, "source_id": source_id})


# Built once: every paid invoice appends and looks up entries (docs/decisions/0007).
_ENTRY_COLUMNS = (
    "account_id",
    "kind",
    "source_id",
    "amount",
    "payment_intent_id",
    "charge_id",
    "stripe_invoice_id",
    "stripe_event_id",
    "description",
)
# Run as `from_statement`: an `insert(CreditEntry)` run directly takes the ORM's bulk path,
# which keys a new statement every call (`db.invoices._invoice_upsert`).
_ADD_ENTRY = select(CreditEntry).from_statement(
    insert(CreditEntry)
    .values({column: bindparam(f"new_{column}") for column in _ENTRY_COLUMNS})
    .on_conflict_do_nothing(constraint="uq_credit_ledger_kind_source")
    .returning(CreditEntry)
)
_FIND_ENTRY = select(CreditEntry).where(
    CreditEntry.kind == bindparam("kind"), CreditEntry.source_id == bindparam("source_id")
)


def balance(session: Session, *, account_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                CreditEntry.account_id == account_id
            )
        )
    )


def entries(session: Session, *, account_id: int) -> list[CreditEntry]:
    """The account's entries, oldest first."""
    return list(
        session.scalars(
            select(CreditEntry).where(CreditEntry.account_id == account_id).order_by(CreditEntry.id)
        )
    )


def entries_page(
    session: Session, *, account_id: int, limit: int, before_id: int | None = None
) -> list[CreditEntry]:
    """The account's entries, newest first; `before_id` continues after a previous page."""
    query = select(CreditEntry).where(CreditEntry.account_id == account_id)
    if before_id is not None:
        query = query.where(CreditEntry.id < before_id)
    return list(session.scalars(query.order_by(CreditEntry.id.desc()).limit(limit)))


def latest_grant(session: Session, *, account_id: int) -> CreditEntry | None:
    """The account's newest grant of credits (a period, an upgrade or a pack)."""
    return session.scalar(
        select(CreditEntry)
        .where(CreditEntry.account_id == account_id, CreditEntry.kind.in_(GRANT_KINDS))
        .order_by(CreditEntry.id.desc())
        .limit(1)
    )


def find_grant_of_payment(
    session: Session, *, payment_intent_id: str | None, charge_id: str | None
) -> CreditEntry | None:
    """The first grant a payment bought (see `grants_of_payment`)."""
    grants = grants_of_payment(session, payment_intent_id=payment_intent_id, charge_id=charge_id)
    return grants[0] if grants else None


def grants_of_payment(
    session: Session, *, payment_intent_id: str | None, charge_id: str | None
) -> list[CreditEntry]:
    """Every grant a payment bought, oldest first: a pack by its payment intent or charge; a
    period's credits and the upgrades its invoice paid for, by those ids or through the
    stored invoice that the payment paid. A renewal that also carries an upgrade's proration
    bought both."""
    match = paid_by(CreditEntry, payment_intent_id=payment_intent_id, charge_id=charge_id)
    if match is None:
        return []
    grants = {
        entry.id: entry
        for entry in session.scalars(
            select(CreditEntry).where(CreditEntry.kind.in_(GRANT_KINDS), match)
        )
    }
    invoice = find_invoice_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id
    )
    if invoice is not None:
        for entry in grants_of_invoice(session, invoice_id=invoice.stripe_invoice_id):
            grants.setdefault(entry.id, entry)
    return [grants[entry_id] for entry_id in sorted(grants)]


def grants_of_invoice(session: Session, *, invoice_id: str) -> list[CreditEntry]:
    """What an invoice's payment bought, oldest first: its period's credits (keyed by the
    invoice id; entries older than `stripe_invoice_id` are found by that key alone) and the
    upgrades whose proration it paid."""
    return list(
        session.scalars(
            select(CreditEntry)
            .where(
                CreditEntry.kind.in_(GRANT_KINDS),
                or_(
                    CreditEntry.stripe_invoice_id == invoice_id,
                    and_(
                        CreditEntry.kind == CreditKind.PLAN_CREDITS,
                        CreditEntry.source_id == invoice_id,
                    ),
                ),
            )
            .order_by(CreditEntry.id)
        )
    )


def bought_with(session: Session, grant: CreditEntry) -> list[CreditEntry]:
    """The grants one payment bought together with this one (itself included): everything
    its invoice paid for, or the grant alone (a pack)."""
    invoice_id = grant.stripe_invoice_id or (
        grant.source_id if grant.kind == CreditKind.PLAN_CREDITS else None
    )
    return grants_of_invoice(session, invoice_id=invoice_id) if invoice_id else [grant]


def sum_by_source_prefix(session: Session, *, kind: CreditKind, prefix: str) -> int:
    """The total of one kind's entries whose source id starts with the prefix."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                CreditEntry.kind == kind, CreditEntry.source_id.startswith(prefix, autoescape=True)
            )
        )
    )


def sum_of_key(session: Session, *, kind: CreditKind, key: str) -> int:
    """The sum of the entries of that kind under `key` and its adjustments `key#<n>`."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                CreditEntry.kind == kind,
                (CreditEntry.source_id == key)
                | CreditEntry.source_id.startswith(f"{key}#", autoescape=True),
            )
        )
    )


def add_adjustment(
    session: Session,
    *,
    account_id: int,
    kind: CreditKind,
    key: str,
    amount: int,
    stripe_event_id: str | None,
    description: str,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
    stripe_invoice_id: str | None = None,
) -> CreditEntry | None:
    """An entry under `key`, or `key#<n>` for the n-th adjustment once `key` is taken. The
    customer's lock serialises writers, so a duplicate delivery computes the same n and its
    insert is a no-op."""
    source_id = key
    if find_entry(session, kind=kind, source_id=key) is not None:
        count = session.scalar(
            select(func.count())
            .select_from(CreditEntry)
            .where(
                CreditEntry.kind == kind,
                CreditEntry.source_id.startswith(f"{key}#", autoescape=True),
            )
        )
        source_id = f"{key}#{int(count or 0) + 1}"
    return add_entry(
        session,
        account_id=account_id,
        kind=kind,
        source_id=source_id,
        amount=amount,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        stripe_invoice_id=stripe_invoice_id,
        stripe_event_id=stripe_event_id,
        description=description,
    )


class InsufficientCredits(Exception):
    """The balance cannot pay for the consumption (a negative balance never can)."""

    def __init__(self, balance: int, amount: int) -> None:
        super().__init__(f"balance {balance} cannot pay {amount} credits")
        self.balance = balance
        self.amount = amount


def consume(
    session: Session, *, account_id: int, amount: int, key: str, description: str | None = None
) -> CreditEntry:
    """Spend credits once per (account, key). The customer's lock serialises it with every
    other ledger write of the account, so two concurrent consumptions can never both spend
    the last credit, nor one spend what a hold is taking back; a short or negative balance (a
    chargeback's hold can make it negative) refuses with `InsufficientCredits`."""
    if amount <= 0:
        raise ValueError("a consumption spends a positive number of credits")
    # The customer's lock, which every event handler writing this account's ledger holds.
    customer_id = session.scalar(select(Account.stripe_customer_id).where(Account.id == account_id))
    if customer_id is None:
        raise ValueError(f"no account {account_id}")
    lock_customer(session, customer_id)
    source_id = f"{account_id}:{key}"
    earlier = find_entry(session, kind=CreditKind.CONSUMPTION, source_id=source_id)
    if earlier is not None:
        return earlier
    available = balance(session, account_id=account_id)
    if available < amount:
        raise InsufficientCredits(available, amount)
    entry = add_entry(
        session,
        account_id=account_id,
        kind=CreditKind.CONSUMPTION,
        source_id=source_id,
        amount=-amount,
        description=description,
    )
    assert entry is not None  # the lock and the lookup above rule out a duplicate
    return entry
