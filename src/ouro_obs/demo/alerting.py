"""The demo's Alertmanager: started with the generated routes, and what it delivered.

A real Alertmanager runs the generated configuration (receivers pointed at the demo's
webhook, timers in seconds: :func:`ouro_obs.demo.generate.routed_to_webhook`); the demo's
Prometheus sends it its alerts. At the end the demo reads what reached the webhook, and
from Alertmanager's ``/api/v2/alerts`` which alerts it held back and why: the page of an
SLO is delivered, its ticket inhibited.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ouro_obs.demo.console import Console, table
from ouro_obs.demo.options import DEMO_GROUP_INTERVAL, DEMO_GROUP_WAIT
from ouro_obs.demo.processes import AlertmanagerServer, find_alertmanager
from ouro_obs.demo.session import DemoRun
from ouro_obs.demo.webhook import DeliveredAlert, Notification, WebhookReceiver
from ouro_obs.slo.conventions import SLO_LABEL, URGENCY_LABEL
from ouro_obs.slo.spec import ServiceSpec

__all__ = [
    "DELIVERY_WAIT_SECONDS",
    "delivery_results",
    "find_alertmanager_binary",
    "print_delivery",
    "routing_note",
    "start_alertmanager",
    "start_webhook",
    "wait_for_page_delivery",
]

#: After the traffic, how long the demo waits for a page that fires to be delivered:
#: Alertmanager's group_wait, and Prometheus's send, with room to spare.
DELIVERY_WAIT_SECONDS = 20.0


def start_webhook(run: DemoRun) -> WebhookReceiver:
    """The loopback webhook the generated receivers send to, stopped with the rest."""
    webhook = WebhookReceiver()
    with run.guard.deferred():
        run.stack.callback(webhook.stop)
        webhook.start()
    run.webhook = webhook
    return webhook


def routing_note(spec: ServiceSpec, webhook: WebhookReceiver) -> str:
    """What the demo changed in the Alertmanager configuration, ``spec`` being the original."""
    routing = spec.alertmanager
    return (
        f"Alertmanager routes as generated, but pages and tickets go to the demo's webhook "
        f"({webhook.url}/page, /ticket), group_wait {routing.group_wait} -> {DEMO_GROUP_WAIT} "
        f"and group_interval {routing.group_interval} -> {DEMO_GROUP_INTERVAL}"
    )


def find_alertmanager_binary(console: Console) -> str | None:
    """The Alertmanager binary; when it is missing, say which package provides it."""
    found = find_alertmanager()
    if found is None:
        console.note(
            "Alertmanager is not installed: install it to see the page delivered "
            "(Debian/Ubuntu: sudo apt-get install prometheus-alertmanager; elsewhere put "
            "alertmanager on PATH). Running the rest without it."
        )
    return found


def start_alertmanager(run: DemoRun, binary: str, port: int, step: tuple[int, int]) -> None:
    assert run.generated is not None
    alertmanager = AlertmanagerServer(
        config=run.generated.alertmanager_file,
        workdir=run.layout.alertmanager,
        port=port,
        binary=binary,
    )
    run.console.step(
        *step,
        f"starting Alertmanager on {alertmanager.url} "
        f"(routes from {run.generated.alertmanager_file.name})",
    )
    run.alertmanager = run.start("alertmanager", alertmanager)


def _page_delivered(run: DemoRun) -> bool:
    return run.webhook is not None and any(
        alert.labels.get(URGENCY_LABEL) == "page" and alert.status == "firing"
        for notification in run.webhook.notifications
        for alert in notification.alerts
    )


def wait_for_page_delivery(run: DemoRun) -> None:
    """When a page fired in Prometheus, give Alertmanager the time to deliver it."""
    if run.alertmanager is None or run.tracker is None or not run.tracker.firing_page():
        return
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while not _page_delivered(run) and time.monotonic() < deadline:
        time.sleep(0.5)


# --------------------------------------------------------------------------- as data


def _delivery_row(
    notification: Notification, alert: DeliveredAlert, since: float
) -> dict[str, Any]:
    return {
        "receiver": notification.receiver,
        "alert": alert.name,
        "urgency": alert.labels.get(URGENCY_LABEL, ""),
        "slo": alert.labels.get(SLO_LABEL, ""),
        "status": alert.status,
        "runbook_url": alert.annotations.get("runbook_url"),
        "seconds": round(notification.received_at - since, 1),
    }


def _deliveries(run: DemoRun) -> list[dict[str, Any]]:
    """One row per alert per notification that reached the webhook, oldest first."""
    if run.webhook is None:
        return []
    notifications = run.webhook.notifications
    since = run.traffic_started
    return [_delivery_row(n, alert, since) for n in notifications for alert in n.alerts]


def _held_back(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The alerts Alertmanager suppressed, with the names of the alerts inhibiting them."""
    names = {alert["fingerprint"]: alert["labels"].get("alertname", "") for alert in alerts}
    return [
        {
            "alert": alert["labels"].get("alertname", ""),
            "urgency": alert["labels"].get(URGENCY_LABEL, ""),
            "slo": alert["labels"].get(SLO_LABEL, ""),
            "state": alert["status"]["state"],
            "inhibited_by": sorted(
                {
                    names.get(fingerprint, fingerprint)
                    for fingerprint in alert["status"]["inhibitedBy"]
                }
            ),
        }
        for alert in alerts
        if alert["status"]["state"] == "suppressed"
    ]


def delivery_results(run: DemoRun) -> dict[str, Any]:
    """What reached the webhook and what Alertmanager held back (JSON-ready)."""
    if run.alertmanager is None:
        return {"alertmanager": None, "deliveries": [], "suppressed": [], "page_delivered": None}
    deliveries = _deliveries(run)
    pages = [
        row
        for row in deliveries
        if row["urgency"] == "page" and row["slo"] and row["status"] == "firing"
    ]
    first = pages[0] if pages else None
    if first is not None:
        first = {**first, "times": sum(1 for row in pages if row["alert"] == first["alert"])}
    return {
        "alertmanager": run.alertmanager.url,
        "deliveries": deliveries,
        "suppressed": _held_back(run.alertmanager.alerts()),
        "page_delivered": first,
    }


# --------------------------------------------------------------------------- as text


def _seconds(row: Mapping[str, Any]) -> str:
    return f"{row['seconds']:.0f}s"


def print_delivery(run: DemoRun) -> None:
    console, summary = run.console, run.summary
    if summary["alertmanager"] is None:
        console.line("\nAlertmanager: not running, so nothing was routed or delivered")
        return
    console.line(
        f"\nAlertmanager ({summary['alertmanager']}: the generated routes, receivers sent to "
        f"the demo's webhook, group_wait {DEMO_GROUP_WAIT}; times from the start of the traffic)"
    )
    rows = [
        [row["alert"], row["receiver"], row["status"], _seconds(row)]
        for row in summary["deliveries"]
    ]
    for line in table(["alert", "receiver", "status", "delivered"], rows) if rows else []:
        console.line(line)
    page = summary["page_delivered"]
    if page is None:
        console.line("  no page was delivered")
        return
    times = "once" if page["times"] == 1 else f"{page['times']} times"
    console.line(
        f"  the page {page['alert']} reached {page['receiver']} {_seconds(page)} after the "
        f"traffic began, {times}; runbook: {page['runbook_url']}"
    )
    _print_ticket_of(run, page)


def _print_ticket_of(run: DemoRun, page: Mapping[str, Any]) -> None:
    """Whether the ticket of the paged SLO was held back (inhibited) or delivered."""
    console, summary = run.console, run.summary
    held = [
        row
        for row in summary["suppressed"]
        if row["slo"] == page["slo"] and row["urgency"] == "ticket"
    ]
    delivered = [
        row
        for row in summary["deliveries"]
        if row["slo"] == page["slo"] and row["urgency"] == "ticket"
    ]
    for row in held:
        console.line(
            f"  its ticket {row['alert']} fires too, and Alertmanager holds it back: "
            f"{row['state']}, inhibited by {', '.join(row['inhibited_by'])}"
        )
    if delivered:
        console.line(
            f"  its ticket was delivered too, to {delivered[0]['receiver']} "
            f"{_seconds(delivered[0])} after the traffic began"
        )
    elif held:
        console.line("  nothing was delivered for that ticket")
    else:
        console.line("  its ticket did not fire")
