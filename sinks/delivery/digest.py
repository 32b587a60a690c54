"""The daily digest: what happened in the last 24 hours, once a day, per destination.

New issues, the top issues by true event count, regressions and the error-rate change per service
(day over day), read from the analyst views (``v_issues_24h``, ``v_error_rate_change``) and the
``alerts`` table, rendered for Slack (Block Kit), e-mail (text and HTML) or as JSON for generic
webhooks. ``errstream notify`` sends it at ``ERRSTREAM_DIGEST_AT`` (UTC) to the destinations named in
``ERRSTREAM_DIGEST_DESTINATIONS``; ``errstream digest`` prints it on demand.

Sent once per day and destination across restarts: the digest's id is derived from its date and the
destination, and its delivery is recorded in ``alert_deliveries`` like an alert's, so a restarted or
second notify process sees it already sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time
from email.message import EmailMessage
from email.utils import formatdate
from html import escape
from typing import Any

import httpx
import orjson
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.alerts import ALERT_NAMESPACE
from schemas.notifications import EmailDestination, WebhookDestination
from sinks.clickhouse.client import connect
from sinks.delivery.email import send_email

log = logging.getLogger("errstream.digest")
TOP = 10


@dataclass
class DigestIssue:
    fingerprint: str
    title: str
    events: int
    users: int
    status: str = ""


@dataclass
class RateChange:
    """Per service: error events in the last 24 h and the 24 h before, and the error *rate* — the percent of
    sessions or requests that errored — where the service reports release health (None where it does not)."""

    service: str
    events: int
    previous: int
    change_pct: float | None
    error_rate_pct: float | None = None


@dataclass
class Digest:
    day: date
    generated_at: datetime
    events: int = 0
    new_issues: list[DigestIssue] = field(default_factory=list)
    top_issues: list[DigestIssue] = field(default_factory=list)
    regressions: list[DigestIssue] = field(default_factory=list)
    rates: list[RateChange] = field(default_factory=list)
    # true totals: the lists above show the first TOP of each, the headline counts them all
    new_issue_count: int = 0
    regression_count: int = 0

    @property
    def title(self) -> str:
        return (f"errstream daily digest {self.day:%Y-%m-%d}: {self.events:,} events, "
                f"{self.new_issue_count} new issue(s), {self.regression_count} regression(s)")

    def more(self, heading: str) -> int:
        """How many of a section's issues the list leaves out."""
        shown = {"New issues": (self.new_issue_count, self.new_issues),
                 "Regressions": (self.regression_count, self.regressions)}.get(heading)
        return max(0, shown[0] - len(shown[1])) if shown else 0

    def to_json(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(asdict(self)))


def build_digest(client: Client, database: str, now: datetime | None = None) -> Digest:
    now = now or datetime.now(UTC)
    digest = Digest(day=now.date(), generated_at=now)
    db = database

    def issues(sql: str) -> list[DigestIssue]:
        return [DigestIssue(str(r[0]), str(r[1] or ""), int(r[2]), int(r[3]), str(r[4] or ""))
                for r in client.query(sql).result_rows]

    digest.new_issues = issues(f"SELECT fingerprint, title, events_24h, users_24h, status FROM {db}.v_issues_24h "
                               f"WHERE is_new ORDER BY events_24h DESC, fingerprint LIMIT {TOP}")
    digest.top_issues = issues(f"SELECT fingerprint, title, events_24h, users_24h, status FROM {db}.v_issues_24h "
                               f"ORDER BY events_24h DESC, fingerprint LIMIT {TOP}")
    digest.regressions = issues(
        f"SELECT a.fingerprint, any(a.title), ifNull(any(i.events_24h), 0), ifNull(any(i.users_24h), 0), 'regressed' "
        f"FROM {db}.alerts AS a LEFT JOIN {db}.v_issues_24h AS i ON i.fingerprint = a.fingerprint "
        f"WHERE a.kind = 'regression' AND a.created_at >= now() - INTERVAL 24 HOUR "
        f"GROUP BY a.fingerprint ORDER BY max(a.created_at) DESC LIMIT {TOP}")
    digest.new_issue_count = int(client.query(f"SELECT count() FROM {db}.v_issues_24h WHERE is_new").result_rows[0][0])
    digest.regression_count = int(client.query(
        f"SELECT uniqExact(fingerprint) FROM {db}.alerts WHERE kind = 'regression' "
        f"AND created_at >= now() - INTERVAL 24 HOUR").result_rows[0][0])
    rates = {str(r[0]): float(r[1]) for r in client.query(
        f"SELECT service, 100 * least(sum(errored) + uniqCombinedMerge(12)(errored_sessions), sum(started)) "
        f"/ sum(started) FROM {db}.session_counts_1m WHERE minute >= now() - INTERVAL 24 HOUR "
        f"GROUP BY service HAVING sum(started) > 0").result_rows}
    digest.rates = [RateChange(str(r[0]), int(r[1]), int(r[2]), None if r[3] is None else float(r[3]),
                               rates.get(str(r[0])))
                    for r in client.query(f"SELECT service, events_current, events_previous, change_pct "
                                          f"FROM {db}.v_error_rate_change LIMIT 20").result_rows]
    digest.events = sum(r.events for r in digest.rates)
    return digest


def _change(rate: RateChange) -> str:
    return "new" if rate.change_pct is None else f"{rate.change_pct:+.1f} %"


def _rate(rate: RateChange) -> str:
    return "no release health" if rate.error_rate_pct is None else f"{rate.error_rate_pct:.2f} % errored"


RATES_HEADING = "Errors by service (events in the last 24 h, change from the 24 h before, error rate)"


def render_text(d: Digest, base_url: str = "") -> str:
    lines = [d.title, ""]
    for heading, items in (("New issues", d.new_issues), ("Regressions", d.regressions),
                           ("Top issues", d.top_issues)):
        lines.append(f"{heading}:")
        lines += [f"  {i.events:>8,} events {i.users:>6,} users  {i.title}  [{i.fingerprint[:12]}]" for i in items] \
            or ["  none"]
        if more := d.more(heading):
            lines.append(f"  … and {more} more")
        lines.append("")
    lines.append(f"{RATES_HEADING}:")
    lines += [f"  {r.service:<24} {r.events:>8,} events  ({_change(r)}), {_rate(r)}" for r in d.rates] \
        or ["  no errors"]
    if base_url:
        lines += ["", f"Open errstream: {base_url.rstrip('/')}/"]
    return "\n".join(lines)


def render_slack(d: Digest, base_url: str = "") -> dict[str, Any]:
    def issue_lines(items: list[DigestIssue]) -> str:
        return "\n".join(f"• *{i.events:,}* events, {i.users:,} users — {_escape(i.title)[:150]} `{i.fingerprint[:12]}`"
                         for i in items) or "_none_"

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Daily digest {d.day:%Y-%m-%d}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{d.events:,}* events · "
                                     f"*{d.new_issue_count}* new issue(s) · *{d.regression_count}* regression(s)"}},
    ]
    for heading, items in (("New issues", d.new_issues), ("Regressions", d.regressions),
                           ("Top issues", d.top_issues)):
        more = f"\n_… and {d.more(heading)} more_" if d.more(heading) else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"*{heading}*\n{issue_lines(items)[:2900]}{more}"}})
    rates = "\n".join(f"• {_escape(r.service)}: {r.events:,} events ({_change(r)}), {_rate(r)}"
                      for r in d.rates) or "_no errors_"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{RATES_HEADING}*\n{rates}"[:3000]}})
    if base_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{base_url}|Open errstream>"}]})
    return {"text": d.title, "blocks": blocks}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_email(d: Digest, dest: EmailDestination, base_url: str = "") -> EmailMessage:
    def table(items: list[DigestIssue], more: int = 0) -> str:
        if not items:
            return "<p><i>none</i></p>"
        rows = "".join(f"<tr><td align='right'>{i.events:,}</td><td align='right'>{i.users:,}</td>"
                       f"<td>{escape(i.title)}</td><td><code>{i.fingerprint[:12]}</code></td></tr>" for i in items)
        rest = f"<p><i>… and {more} more</i></p>" if more else ""
        return f"<table><tr><th>events</th><th>users</th><th>issue</th><th></th></tr>{rows}</table>{rest}"

    rates = "".join(f"<tr><td>{escape(r.service)}</td><td align='right'>{r.events:,}</td><td>{_change(r)}</td>"
                    f"<td>{_rate(r)}</td></tr>" for r in d.rates)
    html = (f"<!doctype html><html><body style='font-family:sans-serif'><h2>{escape(d.title)}</h2>"
            f"<h3>New issues</h3>{table(d.new_issues, d.more('New issues'))}"
            f"<h3>Regressions</h3>{table(d.regressions, d.more('Regressions'))}"
            f"<h3>Top issues</h3>{table(d.top_issues)}<h3>{escape(RATES_HEADING)}</h3>"
            f"<table><tr><th>service</th><th>events</th><th>day over day</th><th>error rate</th></tr>{rates}</table>"
            + (f"<p><a href='{escape(base_url, quote=True)}'>Open errstream</a></p>" if base_url else "")
            + "</body></html>")
    msg = EmailMessage()
    msg["Subject"] = d.title
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.recipients)
    msg["Date"] = formatdate(d.generated_at.timestamp(), usegmt=True)
    msg["Message-ID"] = f"<digest-{d.day:%Y%m%d}-{dest.name}@errstream>"
    msg.set_content(render_text(d, base_url))
    msg.add_alternative(html, subtype="html")
    return msg


def digest_id(day: date, destination: str) -> uuid.UUID:
    return uuid.uuid5(ALERT_NAMESPACE, f"digest|{day:%Y-%m-%d}|{destination}")


async def send_digest(d: Digest, dest: WebhookDestination | EmailDestination, base_url: str,
                      http: httpx.AsyncClient) -> tuple[str, int, str]:
    """(outcome, status, error) of one attempt: ``delivered``, ``rejected`` or ``failed``."""
    try:
        if isinstance(dest, EmailDestination):
            await send_email(dest, render_email(d, dest, base_url))
            return "delivered", 0, ""
        payload = render_slack(d, base_url) if dest.kind == "slack" else {"digest": d.to_json(),
                                                                           "text": render_text(d, base_url)}
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(digest_id(d.day, dest.name)),
                   **{k: v.get_secret_value() for k, v in dest.headers.items()}}
        if dest.secret is not None:
            mac = hmac.new(dest.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
            headers["X-Errstream-Signature"] = f"sha256={mac}"
        response = await http.post(dest.url.get_secret_value(), content=body, headers=headers,
                                   timeout=dest.timeout_seconds)
        if 200 <= response.status_code < 300:
            return "delivered", response.status_code, ""
        outcome = "rejected" if 400 <= response.status_code < 500 and response.status_code != 429 else "failed"
        return outcome, response.status_code, dest.redact(f"HTTP {response.status_code}")
    except Exception as exc:  # noqa: BLE001 - recorded; the next round tries again
        return "failed", 0, dest.redact(f"{type(exc).__name__}: {exc}")[:500]


class DigestSender:
    """A periodic task of ``errstream notify``: once a day, after ``digest_at``, one digest per destination."""

    name = "digest"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client

    def destinations(self) -> list[WebhookDestination | EmailDestination]:
        wanted = set(self.settings.digest_destinations)
        every: list[WebhookDestination | EmailDestination] = [*self.settings.alert_webhooks,
                                                               *self.settings.alert_emails]
        return [d for d in every if d.name in wanted]

    def due(self, now: datetime) -> date | None:
        hour, minute = (int(x) for x in self.settings.digest_at.split(":"))
        return now.date() if now >= datetime.combine(now.date(), time(hour, minute), UTC) else None

    async def round(self, http: httpx.AsyncClient, now: datetime | None = None) -> int:
        """Send what is due and not yet sent; returns how many digests went out."""
        s = self.settings
        now = now or datetime.now(UTC)
        day = self.due(now)
        if day is None:
            return 0
        if self.client is None:
            self.client = await asyncio.to_thread(connect, s, autogenerate_session_id=False)
        client = self.client
        db = s.clickhouse_database
        pending = []
        for dest in self.destinations():
            ident = digest_id(day, dest.name)
            done = await asyncio.to_thread(client.query,
                                           f"SELECT count() FROM {db}.alert_deliveries WHERE alert_id = "
                                           "{id:UUID} AND outcome IN ('delivered', 'rejected')", parameters={"id": ident})
            if not done.result_rows[0][0]:
                pending.append(dest)
        if not pending:
            return 0
        digest = await asyncio.to_thread(build_digest, client, db, now)
        sent = 0
        for dest in pending:
            outcome, status, error = await send_digest(digest, dest, s.web_base_url, http)
            row = [digest_id(day, dest.name), dest.name, 1, datetime.now(UTC), outcome, status, error, 0.0]
            await asyncio.to_thread(client.insert, f"{db}.alert_deliveries", [row], column_names=[
                "alert_id", "destination", "attempt", "attempted_at", "outcome", "http_status", "error",
                "latency_ms"])
            if outcome == "delivered":
                sent += 1
                log.info("daily digest %s sent to %s", day, dest.name)
            else:
                log.warning("daily digest %s to %s: %s %s", day, dest.name, outcome, error)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        if not self.settings.digest_destinations:
            await stop.wait()
            return
        failing = False
        async with httpx.AsyncClient(follow_redirects=False) as http:
            while not stop.is_set():
                try:
                    await self.round(http)
                    failing = False
                except Exception as exc:  # noqa: BLE001 - ClickHouse away: the next round tries again
                    if not failing:
                        log.warning("daily digest: round failed (%s); retrying", type(exc).__name__)
                    failing = True
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.digest_interval_seconds)
                except TimeoutError:
                    pass

