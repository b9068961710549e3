"""Console admins, their one-time set-password links and their sessions. Tokens are random
and only their sha256 is stored: a leaked table signs nobody in. Functions only flush."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.models import Admin, AdminSession

SETUP_LINK_LIFETIME = timedelta(hours=24)
SESSION_LIFETIME = timedelta(hours=12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_admin(session: Session, *, email: str) -> Admin | None:
    return session.scalar(select(Admin).where(Admin.email == normalise_email(email)))


def issue_setup_token(session: Session, *, email: str) -> tuple[Admin, str]:
    """The admin of that email (created when new) and a fresh one-time set-password token;
    an older link of the same admin stops working. The password, if any, stays until used."""
    admin = find_admin(session, email=email)
    if admin is None:
        admin = Admin(email=normalise_email(email))
        session.add(admin)
    token = secrets.token_urlsafe(32)
    admin.setup_token_hash = token_hash(token)
    admin.setup_token_expires_at = session.scalar(select(func.now())) + SETUP_LINK_LIFETIME
    session.flush()
    return admin, token


def admin_of_setup_token(session: Session, *, token: str) -> Admin | None:
    """The admin a set-password token belongs to, while it is unused and unexpired."""
    return session.scalar(
        select(Admin).where(
            Admin.setup_token_hash == token_hash(token),
            Admin.setup_token_expires_at > func.now(),
        )
    )


def set_password_hash(session: Session, admin: Admin, *, password_hash: str) -> None:
    """Store the new hash, use up the link, and sign out every session of the old password."""
    admin.password_hash = password_hash
    admin.setup_token_hash = None
    admin.setup_token_expires_at = None
    admin.password_set_at = session.scalar(select(func.now()))
    session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))
    session.flush()


def open_session(session: Session, *, admin: Admin) -> tuple[str, AdminSession]:
    """A new session of the admin: the cookie's token, and the row (with its CSRF token)."""
    token = secrets.token_urlsafe(32)
    row = AdminSession(
        token_hash=token_hash(token),
        admin_id=admin.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=session.scalar(select(func.now())) + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    return token, row


def live_session(session: Session, *, token: str) -> tuple[AdminSession, Admin] | None:
    """The unexpired session a cookie token names, and its admin."""
    found = session.execute(
        select(AdminSession, Admin)
        .join(Admin, Admin.id == AdminSession.admin_id)
        .where(AdminSession.token_hash == token_hash(token), AdminSession.expires_at > func.now())
    ).first()
    return None if found is None else (found[0], found[1])


def close_session(session: Session, *, token: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token_hash == token_hash(token)))
    session.flush()


def delete_expired_sessions(session: Session) -> None:
    """Forget sessions past their expiry (called at each sign-in: the table stays small)."""
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= func.now()))
