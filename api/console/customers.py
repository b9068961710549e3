"""Customers: find one by Stripe customer id, email or user id; read its subscription and
their change history, invoices, the ledger with its running balance, emails and disputes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.rendering import render
from api.console.security import ConsoleAdminDep
from api.deps import SessionDep
from db import console_reads, ledger
from db.accounts import find_account
from db.disputes import list_disputes

router = APIRouter(prefix="/console/customers", include_in_schema=False)


@router.get("")
def search(
    request: Request,
    me: ConsoleAdminDep,
    db: SessionDep,
    q: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    rows = console_reads.search_accounts(db, query=q)
    if q.strip() and len(rows) == 1 and rows[0].stripe_customer_id == q.strip():
        return RedirectResponse(f"/console/customers/{rows[0].stripe_customer_id}", status_code=303)
    return render(
        request,
        "customers/list.html",
        {"me": me, "section": "customers", "rows": rows, "q": q},
    )


@router.get("/{customer_id}")
def customer_detail(
    request: Request, me: ConsoleAdminDep, db: SessionDep, customer_id: str
) -> Response:
    account = find_account(db, customer_id=customer_id)
    if account is None:
        raise HTTPException(404, f"No account for customer {customer_id}.")
    subscriptions = console_reads.subscriptions_of(db, account_id=account.id)
    entries = ledger.entries(db, account_id=account.id)
    running: list[tuple[object, int]] = []
    balance = 0
    for entry in entries:
        balance += entry.amount
        running.append((entry, balance))
    running.reverse()  # newest first, each with the balance after it
    return render(
        request,
        "customers/detail.html",
        {
            "me": me,
            "section": "customers",
            "account": account,
            "subscriptions": subscriptions,
            "changes": console_reads.changes_of(db, subscription_ids=[s.id for s in subscriptions]),
            "invoices": console_reads.invoices_of(db, account_id=account.id),
            "ledger": running,
            "balance": balance,
            "emails": console_reads.emails_to(db, address=account.email) if account.email else [],
            "disputes": list_disputes(db, account_id=account.id, limit=200),
        },
    )
