"""``sentry_sdk.init`` options that mean the same on sentry-sdk 2.x and 3.x.

sentry-sdk 3.0 replaced ``send_default_pii``, ``include_local_variables`` and
``include_source_context`` with one ``data_collection`` option and refuses the old
names with ``TypeError: Unknown option``. Services in the field run both majors, so
the test apps ask for what they mean here and get the spelling of the installed SDK.
"""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk


def sdk_major() -> int:
    """The installed sentry-sdk's major version."""
    return int(sentry_sdk.VERSION.split(".")[0])


def everything_a_careless_team_sends() -> dict[str, Any]:
    """Users, cookies, headers, query strings and bodies: 2.x's ``send_default_pii=True``.

    3.x collects these by default but still masks keys on its own denylist ("auth",
    "session", "password", …); what it lets through is what errstream must scrub.
    """
    if sdk_major() >= 3:
        return {"data_collection": {"user_info": True, "http_bodies": ["incoming_request"]}}
    return {"send_default_pii": True}


def with_local_variables() -> dict[str, Any]:
    """Each frame's local variables and its source lines, as 2.x's ``include_local_variables=True``."""
    if sdk_major() >= 3:
        return {"data_collection": {"stack_frame_variables": True, "frame_context_lines": 5}}
    return {"include_local_variables": True}


def logging_breadcrumbs_and_error_events() -> dict[str, Any]:
    """Log records as breadcrumbs (INFO and up) and as events (ERROR and up), 2.x's default.

    3.x dropped the logging integration from its defaults and, once added, sends
    records as Sentry Logs (``log`` items) unless ``event_level`` is set: a team
    moving to 3.x adds this to keep its log breadcrumbs and error events.
    """
    from sentry_sdk.integrations.logging import LoggingIntegration

    return {"integrations": [LoggingIntegration(event_level=logging.ERROR)]}
