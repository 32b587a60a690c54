"""Message parameterisation: variable parts become typed placeholders, words stay."""

from __future__ import annotations

import re
import time

import pytest

from errstream_core.scrub import sensitive
from stream_processors import normalize
from stream_processors.normalize import message_key, parameterize
from stream_processors.scrub import scrub_text

PLACEHOLDER_CASES = [
    ("order 550e8400-e29b-41d4-a716-446655440000 not found", "order <uuid> not found"),
    ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
    ("retry 3/5 failed", "retry <num>/<num> failed"),
    ("took 1.5s, limit -2.25e3", "took <dur>, limit <num>"),
    ("at 2024-03-01T12:30:45.123Z the job failed", "at <ts> the job failed"),
    ('127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET"', "<ip> - - [<ts>] <str>"),
    ("job started Mon Jun 20 03:40:59 2005", "job started <ts>"),
    ("connect to 10.0.3.7:5432 refused", "connect to <ip>:<num> refused"),
    ("no route to fe80::1ff:fe23:4567:890a", "no route to <ip>"),
    ("mail to bob.smith+x@example.co.uk bounced", "mail to <email> bounced"),
    ("GET https://api.example.com/v1/users?id=7 returned 502", "GET <url> returned <num>"),
    ("open /var/lib/app/data-7.db: permission denied", "open <path>: permission denied"),
    (r"open C:\Users\bob\file.txt failed", "open <path> failed"),
    ("object at 0x7f3a2b1c0d10 is not callable", "object at <addr> is not callable"),
    ("KeyError: 'user_id'", "KeyError: <str>"),
    ("worker node-17 lost heartbeat", "worker <id> lost heartbeat"),
    ("resolve failed for an14 an15 an16 an17", "resolve failed for <id>"),
    ("session opened for user cyrus", "session opened for user <user>"),
    ("lock=42 state=ACTIVE retry=true", "lock=<val> state=ACTIVE retry=true"),
    ("connection from web-3.eu.example.com", "connection from <host>"),
    # sizes and durations: the number and its unit are one value
    ("read 1190 bytes (1.16 KB) in 250 ms", "read <size> in <dur>"),
    ("cache holds 93.0 B, free 317.1 MiB", "cache holds <size>, free <size>"),
    ("lock held for <1 sec, then 3 seconds", "lock held for <dur>, then <dur>"),
    # a URL ends before sentence punctuation
    ("see https://docs.example.com/errors/E42.", "see <url>."),
    # a MAC address is not a time
    ("BSSID changed to 5c:50:15:36:bc:03", "BSSID changed to <mac>"),
    # relative paths and doubled separators
    ("Error loading ./bin/runtime_malloc: no such file", "Error loading <path>: no such file"),
    ("Error loading /home/yates//bandwidth.rts: no such file", "Error loading <path>: no such file"),
    # any dotted name before :port is an endpoint, and a dotted name with a constant's label is not a host
    ("github.com:443 open through proxy", "<host>:<num> open through proxy"),
    ("error in views.py:42", "error in views.py:<num>"),
    ("broadcast android.intent.action.SCREEN_ON", "broadcast android.intent.action.SCREEN_ON"),
    # a double-quoted value of a key is one value, spaces or not; null and None are values too
    ('acquire tag="View Lock" ws=null retry=None', "acquire tag=<val> ws=<val> retry=<val>"),
]


@pytest.mark.parametrize(("message", "expected"), PLACEHOLDER_CASES)
def test_placeholders(message: str, expected: str) -> None:
    assert parameterize(message) == expected


def test_the_key_says_where_values_are_not_what_they_are() -> None:
    assert message_key("connect to 10.0.3.7:5432 refused after 3/5 retries, ws=null") == (
        "connect to <*> refused after <*> retries, ws=<*>")
    assert message_key("no customer named 'bob smith' (id 42).") == "no customer named <*> (id <*>)."
    assert message_key("Hit by torpedo! QQ.10018 at HTTP/1.1") == "Hit by torpedo! QQ.<*> at HTTP/<*>"  # inside words too


def test_meaningful_words_stay_apart() -> None:
    assert message_key("connection refused by 10.0.0.1") != message_key("connection reset by 10.0.0.1")
    assert message_key("payment declined") != message_key("payment accepted")
    assert message_key("connection refused by 10.0.0.1") == message_key("connection refused by 10.9.8.7")


def test_parameterisation_is_idempotent() -> None:
    for message in ("retry 3/5 for 10.0.0.1 at 2024-03-01T12:30:45Z", "user bob@example.com id=7 path /a/b"):
        once = parameterize(message)
        assert parameterize(once) == once


@pytest.mark.parametrize("message", [
    "login failed for bob@example.com with password=hunter2 from 10.2.3.4",
    "card 4111-1111-1111-1111 and order 4111111111111112 declined",
    "api_key: 'abc123secret' rejected; token=xyz",
    "GET https://user:pw@api.example.com/v1?access_token=abc failed",
    "Authorization: Basic dXNlcjpwYXNzd29yZA== refused",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789 revoked",
])
def test_scrubbing_never_changes_the_key(message: str) -> None:
    assert message_key(scrub_text(message, ip_addresses=True)) == message_key(message)
    assert message_key(scrub_text(message)) == message_key(message)


HOSTILE = {  # 8 KB messages; all but the last two made earlier rules backtrack quadratically (0.1–0.9 s CPU)
    "hyphenated": "a-" * 4096, "hyphenated digits": "1-" * 4096, "dotted": "a." * 4096, "dotted digits": "1." * 4096,
    "repeated key word": "password" * 1024, "key words then =": "token" * 1637 + "=", "e-mail-ish": "a.a" * 2730 + "@",
    "mixed": "a1-" * 2730, "slashes": "/a" * 4096, "colons": "a:" * 4096 + ":",
    "glued values": "#1" * 4096, "punctuation": "#." * 4096, "quoted key": 'a="' * 2730, "double slashes": "//a" * 2730,
    "dotted endpoint": "a." * 4095 + "a:1", "sizes": "1 B" * 2730,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_messages_cost_milliseconds_not_seconds(name: str) -> None:
    text = HOSTILE[name]
    start = time.process_time()
    message_key.__wrapped__(text)
    scrub_text(text, ip_addresses=True)
    assert time.process_time() - start < 0.1  # linear rules: ≤ 15 ms CPU on the loaded dev machine


ONE_SLOT_CASES = [
    # quoted values with a space, or with the other quote character, are one value
    ("no customer named 'bob smith' in tenant", "no customer named 'Alice Jones-Ng' in tenant"),
    ('company "O\'Brien & Sons" rejected the invoice', 'company "Dunn\'s Hardware" rejected the invoice'),
    # dates written with names: weekday and month names are part of the date, not words
    ("upstream answered at Tue, 03 Nov 2026 10:15:00 GMT", "upstream answered at Wed, 04 Nov 2026 08:01:59 GMT"),
    ("certificate expires 3 November 2026", "certificate expires 14 December 2027"),
    ("certificate expires November 3, 2026", "certificate expires January 21, 2027"),
    ("replayed from Nov  3 10:15:00 onwards", "replayed from Dec 14 09:05:07 onwards"),
    ("job started Tue Nov  3 10:15:00 2026", "job started Sun Jan 31 23:59:59 2027"),
    # one slot, one placeholder: a fixed-width hex id that happens to be all digits
    ("request a3f9b2c1 failed", "request 12345678 failed"),
    ("deploy 3f2a1bc rolled back", "deploy 1234567 rolled back"),
    # a host as a name or as an address, and an address inside a host name
    ("connection from 10.0.0.1 (web-3.eu.example.com)", "connection from 10.0.0.2 (10.0.0.2.static.example.net)"),
    ("connection from 10.0.0.1 ()", "connection from 10.0.0.2 (web-3.eu.example.com)"),
    # the user named after "user", whatever its shape
    ("invalid user webmaster from 10.0.0.1", "invalid user test9 from 10.0.0.2"),
    # a size with or without its conversion, in any unit; a duration in any unit or as a bound
    ("upstream closed, 0 bytes sent, 426 bytes received", "upstream closed, 850 bytes sent, 10547 bytes (10.2 KB) received"),
    ("response body too large: 12.5 MB", "response body too large: 980 KB"),
    ("request to billing timed out after 1.5s", "request to billing timed out after 250ms"),
    ("slow query took 3 seconds to complete", "slow query took 0.607 sec to complete"),
    ("connection lifetime <1 sec", "connection lifetime 12 secs"),
    # a quoted value of a key, with or without spaces; an absent value (null, None) and a present one
    ('acquire lock tag="View Lock" uid=1001', 'acquire lock tag="RILJ_ACK_WL" uid=1000'),
    ("acquire lock ws=null uid=1001", "acquire lock ws=WorkSource{10113} uid=1000"),
    ("Retry(total=2, connect=None, read=None)", "Retry(total=1, connect=3, read=None)"),
    # a peer as a URL, a dotted name, an endpoint, an address with its interface
    ("sync job x-coredata://DB05755C/CalDAVPrincipal/p11: start skipped", "sync job com.apple.ical.sync: start skipped"),
    ("csdnimg.cn:80 error : connection canceled", "tcpconn6.tencent.com:443 error : connection canceled"),
    ("github.com:443 open through proxy", "proxy.example.net:5070 open through proxy"),
    ("network changed: en0:10.105.160.226", "network changed: 10.105.163.202"),
    # a token made of values and punctuation is one value, whatever values
    ("synchronized to #3#, stratum 1", "synchronized to 10.100.20.250, stratum 3"),
    ("auth.example.com:443 open through proxy", "api.example.com:443 open through proxy"),  # the first's port is a <secret>
    ("close video chat, friend ******2341.", "close video chat, friend 1742124257."),
    ("retry 3/5 failed", "retry 12 failed"),
    ("BSSID changed to 5c:50:15:36:bc:03", "BSSID changed to 88:75:56:a0:95:ed"),
    ("Error loading ./runtime_malloc: no such file", "Error loading /home/yates//bandwidth.rts: no such file"),
]


@pytest.mark.parametrize(("a", "b"), ONE_SLOT_CASES)
def test_one_slot_of_varying_values_is_one_key(a: str, b: str) -> None:
    assert message_key(a) == message_key(b)


SPLIT_CASES = [
    ("don't retry the payment", "do retry the payment"),  # apostrophes are not quotes
    ('"GET /v2/servers HTTP/1.1" status: 200', '"DELETE /v2/servers HTTP/1.1" status: 200'),  # words in a request
    ("certificate expires 3 November 2026", "certificate revoked 3 November 2026"),
    # letters keep a token glued to a value a word
    ("reason = RoamFail:sts:1_rsn:1", "reason = AssocFail:sts:5_rsn:0"),
    ("(Caused by NewConnectionError('<conn at 0x7f3a>: refused'))", "(Caused by ReadTimeoutError('<conn at 0x7f3a>: refused'))"),
    # a source file and line is a place in the code, not an endpoint
    ("error in views.py:42", "error in models.py:42"),
    # a dotted constant is not a host name
    ("onReceive action: android.intent.action.SCREEN_ON", "onReceive action: android.intent.action.SCREEN_OFF"),
    # flags stay
    ("cache warmup retry=true", "cache warmup retry=false"),
    ("upload failed after 3 parts", "upload failed after 3 bytes"),
]


@pytest.mark.parametrize(("a", "b"), SPLIT_CASES)
def test_words_around_the_values_still_split(a: str, b: str) -> None:
    assert message_key(a) != message_key(b)


def _every_message_here() -> list[str]:
    """Every message this module tests, and some that each rule must see."""
    messages = [m for case in [*PLACEHOLDER_CASES, *ONE_SLOT_CASES, *SPLIT_CASES] for m in case[:2]]
    return messages + [*HOSTILE.values(), "Authorization: BEARER abc.def", "API_KEY: 'x y'", "PassWord=x",
                       "AKIAABCDEFGHIJKLMNOP ghp_abcdefghijklmnopqrstuvwxyz0123", "aa:bb:cc:dd:ee:ff", "<card> 4",
                       "fe80::aa", "ab:cd", "user bob", "0xff", "a.b.c", "x=y", r"C:\x", "a@b.co", "ran at 10:15:00",
                       "pool at <ip>.sh.example.at", "https://u:pw@h.example/x", "card 4111 1111 1111 1111",
                       "sha 9fceb02d0ae5 on dn731", "due Tue, Nov 3", "due 2026/11/03", "to 2001:db8:0:0:1:0:0:1"]


def test_skipping_rules_that_cannot_match_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # each rule runs only on messages holding what it needs (a digit, "@", "://" ...): a shortcut that must
    # never skip a rule that would have matched. Every rule matches at least one of these messages.
    messages = _every_message_here()
    matched = set()
    for message in messages:
        for i, rule in enumerate(normalize._RULES):
            if rule.pattern.search(message):
                matched.add(i)
            message = rule.pattern.sub(rule.replacement, message)
    assert matched == set(range(len(normalize._RULES)))
    with_shortcut = [parameterize(m) for m in messages]
    monkeypatch.setattr(normalize, "_RULES", [r._replace(needs=(), digit=False) for r in normalize._RULES])
    assert [parameterize(m) for m in messages] == with_shortcut


def test_the_secret_rule_runs_for_every_sensitive_word() -> None:
    # the secret rule's shortcut lists stems of the scrubber's words; a word added there must be covered
    words = re.sub(r"\[_-\]\?", "", sensitive.SENSITIVE_WORDS.removeprefix("(?:").removesuffix(")")).split("|")
    assert len(words) >= 10
    for word in words:
        assert any(stem in word for stem in normalize._SECRET_WORDS), word
