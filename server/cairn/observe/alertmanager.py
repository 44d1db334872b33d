"""The example Alertmanager configuration shipped with the rules (alerts/alertmanager.example.yml).

Critical alerts page (receiver ``pager``), warnings become tickets (receiver ``tickets``); the
two never mix. Inhibitions silence symptoms while their cause fires, so an operator woken by a
lost leader is not also paged for every slow or failed request it causes. The rules name alerts
from `alerts.ALERTS` and fail at render time if one of them is renamed.
"""

from __future__ import annotations

from cairn.observe import alerts

PAGER = "pager"
TICKETS = "tickets"

PAGER_URL = "http://127.0.0.1:9095/pager"
TICKETS_URL = "http://127.0.0.1:9095/tickets"
"""Placeholders: point them at the paging and ticketing integrations (or swap the webhooks for
pagerduty_configs / email_configs)."""

INHIBITIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "etcdInsufficientMembers",
        ("etcdMembersDown", "etcdNoLeader", "etcdHighNumberOfLeaderChanges"),
        ("job",),
    ),
    (
        "etcdNoLeader",
        (
            "etcdGRPCRequestsSlow",
            "etcdHighNumberOfFailedGRPCRequests",
            "etcdHighNumberOfFailedProposals",
            "cairnMemberNotApplying",
        ),
        ("job",),
    ),
    ("etcdMembersDown", ("etcdMemberCommunicationSlow",), ("job",)),
    (
        "cairnNoSpaceAlarm",
        (
            "etcdDatabaseQuotaLowSpace",
            "etcdExcessiveDatabaseGrowth",
            "etcdHighNumberOfFailedGRPCRequests",
        ),
        ("job",),
    ),
    ("cairnCorruptAlarm", ("etcdHighNumberOfFailedGRPCRequests",), ("job",)),
    (
        "etcdHighFsyncDurations",
        ("etcdHighCommitDurations", "etcdGRPCRequestsSlow"),
        ("job", "instance"),
    ),
)
"""(cause, symptoms it silences, labels both must share)."""


def _alternation(names: tuple[str, ...]) -> str:
    known = set(alerts.names())
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"inhibition names unknown alerts: {missing}")
    return "|".join(names)


def config() -> dict[str, object]:
    inhibit = [
        {
            "source_matchers": [f'alertname="{_alternation((cause,))}"'],
            "target_matchers": [f'alertname=~"{_alternation(symptoms)}"'],
            "equal": list(equal),
        }
        for cause, symptoms, equal in INHIBITIONS
    ]
    inhibit.append(
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "job", "instance"],
        }
    )
    return {
        "route": {
            "receiver": TICKETS,
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": PAGER,
                    "matchers": ['severity="critical"'],
                    "repeat_interval": "1h",
                },
                {"receiver": TICKETS, "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": inhibit,
        "receivers": [
            {"name": PAGER, "webhook_configs": [{"url": PAGER_URL, "send_resolved": True}]},
            {"name": TICKETS, "webhook_configs": [{"url": TICKETS_URL, "send_resolved": True}]},
        ],
    }
