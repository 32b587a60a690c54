"""PII scrubbing: by value inside text, by key name in structured data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from schemas.events import Breadcrumb, ErrorEvent, ExceptionInfo, RequestInfo, StackFrame, User
from stream_processors.scrub import FILTERED, Scrubber, ScrubConfig, scrub_text
from tests.support.raising import capture, load_module

SIGNUP = """
    def signup(email, card):
        raise ValueError(f"could not create account for {email}: card {card} declined")
"""


def test_emails_are_replaced() -> None:
    assert scrub_text("mail to bob.smith+x@example.co.uk bounced") == "mail to <email> bounced"


def test_only_luhn_valid_card_numbers_are_replaced() -> None:
    assert scrub_text("card 4111 1111 1111 1111 declined") == "card <card> declined"
    assert scrub_text("card 5500-0000-0000-0004 declined") == "card <card> declined"
    assert scrub_text("card 378282246310005 declined") == "card <card> declined"  # Amex, 15 digits
    # same shape, failing the Luhn check: an order number, kept
    assert scrub_text("order 4111111111111112 shipped") == "order 4111111111111112 shipped"
    assert scrub_text("trace 1234567890123 done") == "trace 1234567890123 done"


def test_bearer_tokens_and_api_keys_are_replaced() -> None:
    assert scrub_text("Authorization: Bearer abc.DEF-123_x") == "Authorization: Bearer <token>"
    assert scrub_text("basic dXNlcjpwYXNzd29yZA== sent") == "basic <token> sent"
    for key in (
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-abcdefABCDEF",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ):
        assert scrub_text(f"rejected key {key} today") == "rejected key <token> today", key


def test_secret_assignments_in_text_lose_their_value() -> None:
    assert scrub_text("login password=hunter2 failed") == "login password=<secret> failed"
    assert scrub_text("client_secret: 's3cr3t value' expired") == "client_secret: <secret> expired"
    assert scrub_text("count=3 region=eu") == "count=3 region=eu"


def test_ip_addresses_only_on_request() -> None:
    assert scrub_text("from 10.2.3.4") == "from 10.2.3.4"
    assert scrub_text("from 10.2.3.4", ip_addresses=True) == "from <ip>"


def _rich_event() -> ErrorEvent:
    return ErrorEvent(
        service="billing",
        message="payment failed for alice@example.com",
        tags={"region": "eu-west-1", "api_key": "k-123", "customer": "bob@example.com"},
        context={
            "db": {"host": "db-1", "password": "pw", "dsn_list": ["postgres://u@h/db", "token=abc"]},
            "Session-Id": "s-1",
            "attempts": 3,
        },
        request=RequestInfo(
            method="POST", url="https://shop.example.com/pay?card=x&access_token=abc&page=2",
            query_string="access_token=abc&page=2",
            headers={"Authorization": "Bearer xyz", "Cookie": "sid=1", "X-Api-Key": "k", "Accept": "text/html"},
        ),
        breadcrumbs=[Breadcrumb(
            timestamp=datetime(2026, 1, 1, tzinfo=UTC), message="POST with Bearer abcdef",
            data={"url": "/pay", "secret_token": "t", "nested": {"Authorization": "x", "ok": 1}},
        )],
        user=User(id="u-42", email="carol@example.com", ip_address="203.0.113.9"),
    )


def test_sensitive_keys_are_filtered_everywhere() -> None:
    event = Scrubber().scrub(_rich_event())
    assert event.tags == {"region": "eu-west-1", "api_key": FILTERED, "customer": "<email>"}
    assert event.context["db"] == {"host": "db-1", "password": FILTERED,
                                   "dsn_list": ["postgres://u@h/db", "token=<secret>"]}
    assert event.context["Session-Id"] == FILTERED and event.context["attempts"] == 3
    assert event.request is not None
    assert event.request.headers == {"Authorization": FILTERED, "Cookie": FILTERED, "X-Api-Key": FILTERED,
                                     "Accept": "text/html"}
    assert event.request.url == f"https://shop.example.com/pay?card=x&access_token={FILTERED}&page=2"
    assert event.request.query_string == f"access_token={FILTERED}&page=2"
    crumb = event.breadcrumbs[0]
    assert crumb.message == "POST with Bearer <token>"
    assert crumb.data == {"url": "/pay", "secret_token": FILTERED, "nested": {"Authorization": FILTERED, "ok": 1}}
    assert event.message == "payment failed for <email>"


def test_user_email_is_hashed_ids_and_ips_only_on_request() -> None:
    default = Scrubber().scrub(_rich_event()).user
    assert default is not None
    assert default.email is not None and default.email.startswith("email:") and "carol" not in default.email
    assert (default.id, default.ip_address) == ("u-42", "203.0.113.9")
    strict = Scrubber(ScrubConfig(hash_ip_addresses=True, hash_user_ids=True, hash_key="k1")).scrub(_rich_event())
    assert strict.user is not None and strict.user.id is not None and strict.user.ip_address is not None
    assert strict.user.id.startswith("id:") and strict.user.ip_address.startswith("ip:")
    # stable for distinct-user counts, different under another deployment key
    again = Scrubber(ScrubConfig(hash_user_ids=True, hash_key="k1")).scrub(_rich_event()).user
    other = Scrubber(ScrubConfig(hash_user_ids=True, hash_key="k2")).scrub(_rich_event()).user
    assert again is not None and other is not None
    assert again.id == strict.user.id != other.id


def test_extra_sensitive_keys_from_configuration() -> None:
    event = ErrorEvent(service="billing", tags={"iban": "DE89370400440532013000", "region": "eu"})
    scrubbed = Scrubber(ScrubConfig(sensitive_keys=("iban",))).scrub(event)
    assert scrubbed.tags == {"iban": FILTERED, "region": "eu"}


def test_a_real_exception_message_is_scrubbed_and_nothing_leaks(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "accounts.signup", SIGNUP)
    event = capture(mod.signup, "dave@example.org", "4012888888881881",
                    tags={"password": "hunter2"}, user=User(email="dave@example.org"))
    Scrubber().scrub(event)
    assert event.exceptions[0].value == "could not create account for <email>: card <card> declined"
    dumped = orjson.dumps(event.model_dump(mode="json")).decode()
    for secret in ("dave@example.org", "4012888888881881", "hunter2"):
        assert secret not in dumped


def test_credentials_in_connection_urls_of_any_scheme_lose_their_password() -> None:
    cases = {
        "redis://:hunter22@cache:6379/0 down": "redis://:[Filtered]@cache:6379/0 down",
        "postgres://admin:s3cretpw@db:5432/x": "postgres://admin:[Filtered]@db:5432/x",
        # dotted hosts: the e-mail matcher must not take "pw@db.internal.example.com" for an address
        "postgres://admin:s3cretpw@db.internal.example.com:5432/app": (
            "postgres://admin:[Filtered]@db.internal.example.com:5432/app"),
        "mongodb+srv://app:p@ss@cluster0.example.net/db?retryWrites=true": (
            "mongodb+srv://app:[Filtered]@cluster0.example.net/db?retryWrites=true"),
        "amqp://guest:guest@rabbit.svc.cluster.local:5672//": "amqp://guest:[Filtered]@rabbit.svc.cluster.local:5672//",
        "postgres://reader@db.example.com:5432/app": "postgres://reader@db.example.com:5432/app",  # no password
        "see mailto:ada@example.com or https://x.io": "see mailto:<email> or https://x.io",
        "ada@example.com cannot reach https://u:pw@api.example.com/v1": (
            "<email> cannot reach https://u:[Filtered]@api.example.com/v1"),
    }
    for raw, scrubbed in cases.items():
        assert scrub_text(raw) == scrubbed, raw
        assert scrub_text(scrubbed) == scrubbed, scrubbed


def test_scrubbing_is_idempotent_on_whole_events() -> None:
    """Producers scrub before Kafka and the worker again: a second pass must change nothing."""
    for config in (ScrubConfig(), ScrubConfig(hash_ip_addresses=True, hash_user_ids=True, hash_key="k")):
        scrubber = Scrubber(config)
        event = ErrorEvent(
            service="api", message="login for ada@example.com from 10.0.0.7 with password=hunter2",
            exceptions=[ExceptionInfo(type="ConnectionError", value="redis://:hunter22@cache:6379/0 refused")],
            user=User(id="u-1", email="ada@example.com", username="ada", ip_address="203.0.113.5"),
            request=RequestInfo(url="https://u:pw@shop.example.com/p?token=abc&page=2", query_string="token=abc&x=1",
                                headers={"Authorization": "Bearer abc", "X-Request-Id": "r-1"}),
            tags={"db": "postgres://admin:s3cretpw@db.internal.example.com:5432/app", "session_id": "s"},
            context={"cfg": {"dsn": "mysql://root:toor@10.0.0.8/x", "card": "4111 1111 1111 1111"}},
            breadcrumbs=[Breadcrumb(message="GET https://k:v@api.example.com", data={"api_key": "k"})],
        )
        once = scrubber.scrub(event.model_copy(deep=True)).model_dump(mode="json")
        twice = scrubber.scrub(ErrorEvent.model_validate(once)).model_dump(mode="json")
        assert twice == once
        assert "hunter2" not in orjson.dumps(once).decode() and "s3cretpw" not in orjson.dumps(once).decode()


def test_every_field_that_can_name_a_person_is_scrubbed_or_hashed() -> None:
    """Before: e-mails in user.id / user.username, in a custom fingerprint and in a frame's source line stayed raw."""
    source = 'raise ConnectionError("postgres://admin:S3cretP4ss@db.internal:5432/app jane.doe@example.com; ' \
             'token=sk_live_51HxYzAbCdEfGhIjKlMn")'
    event = ErrorEvent(
        service="api", message="boom", fingerprint=["login-failed", "jane.doe@example.com"],
        exceptions=[ExceptionInfo(type="ConnectionError", value="x", stacktrace=[
            StackFrame(filename="app/db.py", function="connect", lineno=3, context_line=source)])],
        user=User(id="jane.doe@example.com", username="Jane <jane.doe@example.com>", email="jane.doe@example.com"),
    )
    scrubbed = Scrubber(ScrubConfig(hash_key="k")).scrub(event)
    stored = orjson.dumps(scrubbed.model_dump(mode="json")).decode()
    for secret in ("jane.doe@example.com", "S3cretP4ss", "sk_live_51HxYzAbCdEfGhIjKlMn"):
        assert secret not in stored, secret
    assert scrubbed.user is not None
    assert scrubbed.user.email is not None and scrubbed.user.email.startswith("email:")
    assert scrubbed.user.id == scrubbed.user.email  # one person, one hash
    assert scrubbed.user.username is not None and scrubbed.user.username.startswith("id:")
    assert scrubbed.fingerprint == ["login-failed", scrubbed.user.email]  # still one issue per address
    line = scrubbed.exceptions[0].stacktrace[0].context_line
    assert line is not None and "<email>" in line and "db.internal" in line
    plain = Scrubber().scrub(ErrorEvent(service="api", user=User(id="u-42", username="ada"))).user
    assert plain is not None and (plain.id, plain.username) == ("u-42", "ada")  # no e-mail, not asked: kept
