"""Use cases: create order, pay, handle notification, refund, close, reconcile, expire.

Each use case owns its transactions; provider calls happen outside them, with the provider
numbers committed before the call (so a crash or timeout never loses track of a payment).
"""
