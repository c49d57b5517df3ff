"""Background work: reconciliation, expiry, merchant webhooks (outbox delivery)."""
