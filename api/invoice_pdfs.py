"""Serving an archived invoice PDF, for the user's and the admin's routes."""

from __future__ import annotations

import logging

from fastapi import HTTPException, Response
from sqlalchemy.orm import Session

from billing.invoice_archive import ArchiveMismatch, read_archived_pdf
from core.object_store import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


def archived_pdf_response(session: Session, store: ObjectStore, *, invoice_id: str) -> Response:
    """The kept PDF as `application/pdf`; 404 while it is not archived yet."""
    try:
        content = read_archived_pdf(session, store, invoice_id=invoice_id)
    except (ObjectNotFound, ArchiveMismatch) as exc:
        # Recorded but missing or altered in the store: an operator's problem, said plainly.
        log.error("invoice %s archive unreadable: %s", invoice_id, exc)
        raise HTTPException(
            503, f"The archived PDF of invoice {invoice_id} is unreadable."
        ) from None
    if content is None:
        raise HTTPException(404, f"Invoice {invoice_id} has no archived PDF yet.")
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice_id}.pdf"'},
    )
