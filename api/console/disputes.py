"""Disputes: by evidence deadline with a countdown; one dispute's status history, funds
movements and credit hold; the evidence form (stage, or submit after a confirmation) and
conceding (after a confirmation). The actions are the admin API's (`api.operations`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, get_args

import stripe
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api import operations
from api.console.rendering import render
from api.console.security import CheckedFormDep, ConsoleAdmin, ConsoleAdminDep
from api.deps import BillingDep, SessionDep
from api.schemas import EvidenceField
from billing.context import BillingContext
from billing.dispute_actions import DisputeClosed, DisputeNotFound, StripeRequired
from billing.disputes import CLOSED_STATUSES
from billing.evidence import evidence_draft
from core.redaction import redact_for_client
from core.stripe_client import stripe_unavailable_reason
from db import console_reads

router = APIRouter(prefix="/console/disputes", include_in_schema=False)

EVIDENCE_FIELDS: tuple[str, ...] = get_args(EvidenceField)
# Shown open; the others sit in a collapsed group (they fit physical goods, not credits).
MAIN_FIELDS = (
    "product_description",
    "customer_email_address",
    "customer_name",
    "service_date",
    "access_activity_log",
    "refund_policy_disclosure",
    "cancellation_policy_disclosure",
    "uncategorized_text",
)
MAX_EVIDENCE_CHARS = 20_000


@router.get("")
def list_disputes(
    request: Request,
    me: ConsoleAdminDep,
    db: SessionDep,
    show: Annotated[str, Query(pattern="^(open|all)$")] = "open",
) -> Response:
    rows = console_reads.disputes_by_deadline(
        db, closed_statuses=CLOSED_STATUSES, open_only=show == "open"
    )
    return render(
        request,
        "disputes/list.html",
        {"me": me, "section": "disputes", "rows": rows, "show": show},
    )


def _detail_context(
    db: Session, ctx: BillingContext, me: ConsoleAdmin, dispute_id: str
) -> dict[str, Any]:
    found = console_reads.find_dispute_with_customer(db, dispute_id=dispute_id)
    if found is None:
        raise HTTPException(404, f"No dispute {dispute_id}.")
    dispute, account = found
    # The form starts from the draft `use_draft` would submit (issue 17's evidence draft).
    draft = evidence_draft(db, ctx, dispute)
    return {
        "me": me,
        "section": "disputes",
        "d": dispute,
        "account": account,
        "history": console_reads.dispute_history(db, dispute_row_id=dispute.id),
        "funds": console_reads.dispute_funds(db, dispute_row_id=dispute.id),
        "hold": console_reads.dispute_ledger(db, dispute_id=dispute_id),
        "actions": console_reads.actions_on(db, target=dispute_id),
        "closed": dispute.status in CLOSED_STATUSES,
        "main_fields": MAIN_FIELDS,
        "other_fields": [f for f in EVIDENCE_FIELDS if f not in MAIN_FIELDS],
        "values": draft["evidence"],
        "visa_ce3": draft["visa_ce3"],
        "submission": draft["submission"],
        "stripe_off": stripe_unavailable_reason(ctx.settings),
    }


@router.get("/{dispute_id}")
def dispute_detail(
    request: Request, me: ConsoleAdminDep, db: SessionDep, ctx: BillingDep, dispute_id: str
) -> Response:
    context = _detail_context(db, ctx, me, dispute_id)
    done = request.query_params.get("done")
    context["flash"] = {
        "staged": "Evidence saved at Stripe (not submitted).",
        "submitted": "Evidence submitted to the bank.",
        "accepted": "Dispute accepted: it is lost, and its hold stays.",
    }.get(done or "")
    return render(request, "disputes/detail.html", context)


def _evidence(form: dict[str, Any]) -> dict[str, str]:
    evidence: dict[str, str] = {}
    for field in EVIDENCE_FIELDS:
        value = form.get(f"evidence_{field}")
        if isinstance(value, str) and value.strip():
            if len(value) > MAX_EVIDENCE_CHARS:
                raise HTTPException(422, f"{field}: over {MAX_EVIDENCE_CHARS:,} characters")
            evidence[field] = value.strip()
    return evidence


async def form_fields(request: Request) -> dict[str, str]:
    """The whole posted form (the evidence has many fields); Starlette parses it once."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormFieldsDep = Annotated[dict[str, str], Depends(form_fields)]


@contextmanager
def _refusals(
    request: Request, db: Session, ctx: BillingContext, me: ConsoleAdmin, dispute_id: str
) -> Iterator[None]:
    """The billing rules' and Stripe's refusals, shown on the dispute's page."""
    try:
        yield
    except DisputeNotFound:
        raise HTTPException(404, f"No dispute {dispute_id}.") from None
    except (DisputeClosed, StripeRequired, stripe.StripeError) as exc:
        db.rollback()
        if isinstance(exc, StripeRequired):
            message = stripe_unavailable_reason(ctx.settings) or "Stripe is off."
        elif isinstance(exc, stripe.StripeError):
            message = "Stripe refused: " + redact_for_client(exc.user_message or str(exc))
        else:
            message = str(exc)
        code = (
            409
            if isinstance(exc, DisputeClosed)
            else 502
            if isinstance(exc, stripe.StripeError)
            else 503
        )
        context = {**_detail_context(db, ctx, me, dispute_id), "error": message}
        raise ShownRefusal(
            render(request, "disputes/detail.html", context, status_code=code)
        ) from None


class ShownRefusal(Exception):
    """An action refused, with the page that says why (the console's handler answers it)."""

    def __init__(self, response: Response) -> None:
        self.response = response


@router.post("/{dispute_id}/evidence")
def post_evidence(
    request: Request,
    me: CheckedFormDep,
    db: SessionDep,
    ctx: BillingDep,
    form: FormFieldsDep,
    dispute_id: str,
) -> Response:
    """Stage the evidence, or (`intent=submit`) show it for confirmation, then submit it."""
    evidence = _evidence(form)
    if not evidence:
        context = _detail_context(db, ctx, me, dispute_id)
        context["error"] = "Write at least one field of evidence."
        return render(request, "disputes/detail.html", context, status_code=422)
    submit = form.get("intent") == "submit"
    if submit and form.get("confirm") != "yes":
        return render(
            request,
            "confirm.html",
            {
                "me": me,
                "section": "disputes",
                "heading": f"Submit the evidence of {dispute_id} to the bank?",
                "question": "Once submitted it cannot be changed, and Stripe sends it to the "
                "card network as it is.",
                "details": [(field, value[:300]) for field, value in evidence.items()],
                "action": f"/console/disputes/{dispute_id}/evidence",
                "hidden": [("intent", "submit")]
                + [(f"evidence_{field}", value) for field, value in evidence.items()],
                "button": "Submit the evidence",
                "cancel": f"/console/disputes/{dispute_id}",
                "danger": False,
            },
        )
    with _refusals(request, db, ctx, me, dispute_id):
        operations.submit_evidence(
            db, ctx, dispute_id=dispute_id, evidence=evidence, submit=submit, actor=me.actor
        )
    done = "submitted" if submit else "staged"
    return RedirectResponse(f"/console/disputes/{dispute_id}?done={done}", status_code=303)


@router.get("/{dispute_id}/accept")
def confirm_accept(
    request: Request, me: ConsoleAdminDep, db: SessionDep, ctx: BillingDep, dispute_id: str
) -> Response:
    context = _detail_context(db, ctx, me, dispute_id)
    d = context["d"]
    return render(
        request,
        "confirm.html",
        {
            "me": me,
            "section": "disputes",
            "heading": f"Accept dispute {dispute_id}?",
            "question": "Accepting concedes it: the money stays with the cardholder and the "
            "credit hold stays. This cannot be undone.",
            "details": [
                ("Amount", f"{d.amount / 100:,.2f} {d.currency.upper()}"),
                ("Reason", d.reason),
            ],
            "action": f"/console/disputes/{dispute_id}/accept",
            "hidden": [],
            "button": "Accept the dispute",
            "cancel": f"/console/disputes/{dispute_id}",
            "danger": True,
        },
    )


@router.post("/{dispute_id}/accept")
def accept(
    request: Request,
    me: CheckedFormDep,
    db: SessionDep,
    ctx: BillingDep,
    dispute_id: str,
) -> Response:
    with _refusals(request, db, ctx, me, dispute_id):
        operations.accept_dispute(db, ctx, dispute_id=dispute_id, actor=me.actor)
    return RedirectResponse(f"/console/disputes/{dispute_id}?done=accepted", status_code=303)
