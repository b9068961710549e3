"""What must never reach Sentry or a log, in the forms tests plant it."""

from __future__ import annotations

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
CARD_DIGITS = CARD.replace(" ", "")
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJl"
SIGNATURE = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
COOKIE = "session-cookie-value-1234"
SECRET_KEY = "sk_live_51HxYzSecretKeyValue"

# What must never arrive, in any form the SDK could have written it.
FORBIDDEN = (EMAIL, CARD, CARD_DIGITS, BEARER, SIGNATURE, COOKIE, SECRET_KEY)
