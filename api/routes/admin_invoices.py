"""`GET /api/admin/invoices/{invoice_id}/pdf`: any invoice's archived PDF."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from api.deps import AdminDep, ArchiveStoreDep, NoNulParamsDep, SessionDep
from api.invoice_pdfs import archived_pdf_response
from api.schemas import VALIDATION_ERROR, ErrorOut
from db.invoices import find_invoice

router = APIRouter(
    prefix="/api/admin/invoices",
    tags=["admin"],
    dependencies=[AdminDep, NoNulParamsDep],
    responses=VALIDATION_ERROR,
)

PDF_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The archived PDF."},
    404: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


@router.get("/{invoice_id}/pdf", response_class=Response, responses=PDF_ANSWERS)
def get_invoice_pdf(session: SessionDep, store: ArchiveStoreDep, invoice_id: str) -> Response:
    """The invoice as archived: Stripe's PDF, or the platform's own (`generated`); 404 for an
    unknown invoice or one not archived yet."""
    if find_invoice(session, invoice_id=invoice_id) is None:
        raise HTTPException(404, f"No invoice {invoice_id}.")
    return archived_pdf_response(session, store, invoice_id=invoice_id)
