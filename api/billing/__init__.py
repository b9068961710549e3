"""What the billing API does for a signed-in user: Stripe calls, and storing Stripe's answers
through the same functions the event handlers use."""
