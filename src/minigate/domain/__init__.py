"""Pure domain rules: money, the order and refund state tables, events. No I/O here."""
