"""deploy/: the alert rules and the dashboard name only metrics minigate exports, and every
alert has its section in docs/operations.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from minigate.observability.metrics import metric_names

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bminigate_[a-z_]+\b")


def _alerts() -> list[dict]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/minigate-alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_exported_metrics() -> None:
    known = set(metric_names())
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "MinigateNotificationFailures", "MinigateOutboxLag", "MinigatePaymentUnknownTooLong",
        "MinigateDatabaseUnavailable", "MinigateCertificateExpiresSoon"}
    for alert in alerts:
        used = set(METRIC.findall(alert["expr"]))
        assert used, alert["alert"]
        assert used <= known, (alert["alert"], used - known)


def test_every_alert_has_a_runbook_section() -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    anchors = {line[4:].strip().lower() for line in docs.splitlines() if line.startswith("### ")}
    for alert in _alerts():
        anchor = alert["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, alert["alert"]


def test_dashboard_uses_only_exported_metrics() -> None:
    known = set(metric_names())
    dashboard = json.loads((ROOT / "deploy/grafana/minigate-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set(METRIC.findall(" ".join(exprs)))
    assert used <= known, used - known
    # Every family minigate exports is on the dashboard (build info aside).
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in known}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families - shown <= {"minigate_build_info"}, families - shown


def test_every_metric_is_documented() -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    for name in metric_names():
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{family}`" in docs or f"`{name}`" in docs, name
