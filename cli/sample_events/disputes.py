"""A chargeback of a credit pack's charge, and the balance transactions it moves."""

from __future__ import annotations

from cli.sample_events.ids import DAY, stripe_id
from cli.sample_events.story import Payment, Story, StripeDict

# Stripe gives the business about three weeks to answer a chargeback; the evidence is due at
# the end of a day.
EVIDENCE_DAYS = 21
DISPUTE_FEE = 1500


def dispute(
    story: Story, payment: Payment, *, dispute_id: str, status: str, reinstated: bool = False
) -> StripeDict:
    """A chargeback of the pack's charge, `fraudulent` as most card disputes are; Stripe takes
    the amount and its fee when the dispute opens, and gives both back if it is won."""
    answered = status not in ("needs_response", "warning_needs_response")
    transactions = [_dispute_transaction(dispute_id, payment, reinstated=False)]
    if reinstated:
        transactions.append(_dispute_transaction(dispute_id, payment, reinstated=True))
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": payment.amount,
        "balance_transactions": transactions,
        "charge": payment.charge,
        "created": story.now - 10,
        "currency": payment.currency,
        "enhanced_eligibility_types": [],
        "evidence": _evidence(story, answered=answered),
        "evidence_details": _evidence_details(story, answered=answered),
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment.payment_intent,
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": "fraudulent",
        "status": status,
    }


def _dispute_transaction(dispute_id: str, payment: Payment, *, reinstated: bool) -> StripeDict:
    sign = 1 if reinstated else -1
    fee = -sign * DISPUTE_FEE
    return {
        "id": stripe_id("txn"),
        "object": "balance_transaction",
        "amount": sign * payment.amount,
        "currency": payment.currency,
        "description": f"Chargeback {'reversal' if reinstated else 'withdrawal'} "
        f"for {payment.charge}",
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": payment.currency,
                "description": "Dispute fee refund" if reinstated else "Dispute fee",
                "type": "stripe_fee",
            }
        ],
        "net": sign * payment.amount - fee,
        "reporting_category": "dispute_reversal" if reinstated else "dispute",
        "source": dispute_id,
        "status": "pending",
        "type": "adjustment",
    }


def _evidence(story: Story, *, answered: bool) -> StripeDict:
    """Empty until the business answers; then who the customer is and what they bought."""
    return {
        "access_activity_log": None,
        "billing_address": None,
        "cancellation_policy": None,
        "cancellation_policy_disclosure": None,
        "cancellation_rebuttal": None,
        "customer_communication": None,
        "customer_email_address": story.email if answered else None,
        "customer_name": "Jenny Rosen" if answered else None,
        "customer_purchase_ip": None,
        "customer_signature": None,
        "duplicate_charge_documentation": None,
        "duplicate_charge_explanation": None,
        "duplicate_charge_id": None,
        "enhanced_evidence": {},
        "product_description": "Credit pack" if answered else None,
        "receipt": None,
        "refund_policy": None,
        "refund_policy_disclosure": None,
        "refund_refusal_explanation": None,
        "service_date": None,
        "service_documentation": None,
        "shipping_address": None,
        "shipping_carrier": None,
        "shipping_date": None,
        "shipping_documentation": None,
        "shipping_tracking_number": None,
        "uncategorized_file": None,
        "uncategorized_text": "The customer used the credits." if answered else None,
    }


def _evidence_details(story: Story, *, answered: bool) -> StripeDict:
    return {
        "due_by": (story.now // DAY + EVIDENCE_DAYS) * DAY - 1,
        "enhanced_eligibility": {},
        "has_evidence": answered,
        "past_due": False,
        "submission_count": 1 if answered else 0,
    }
