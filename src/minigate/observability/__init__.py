"""Operations: Prometheus metrics, request ids, health and readiness."""
