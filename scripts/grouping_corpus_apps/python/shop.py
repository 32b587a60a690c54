"""The corpus app for sentry-sdk (Python): each bug raised a few times, in the build named by argv[1].

Build "b" is deployed under another release directory and moved down (padded). Labels travel in the
tag "bug"; the recorder moves them out of the payload.
"""

import asyncio
import json
import os
import sys
import threading

import sentry_sdk

# EXTRA


def capture(bug, exc):
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("bug", bug)
        sentry_sdk.capture_exception(exc)


def walk(tree, depth):
    return walk(tree, depth + 1) if depth < 10_000 else tree["leaf"]


def price(item):
    return item["price"] * item["qty"]


async def fetch_rates(i):
    await asyncio.sleep(0)
    raise ConnectionError(f"rates service at [2001:db8::{i + 1}]:443 refused after {i + 0.5}s")


def worker(i, out):
    try:
        json.loads("{" * (i + 1))
    except ValueError as exc:
        out.append(exc)


def main():
    build = sys.argv[1]
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], release=f"shop-python@{'7.0.0' if build == 'a' else '7.1.0'}",
                    default_integrations=False)
    sys.setrecursionlimit(200 + 150 * (build == "b"))  # the recursion is cut at another depth
    for i in range(3):
        try:
            walk({}, i)
        except RecursionError as exc:
            capture("python-recursion-walk", exc)
        try:
            price({"qty": i})
        except KeyError as exc:
            capture("python-key-price", exc)
        try:
            asyncio.run(fetch_rates(i))
        except ConnectionError as exc:
            capture("python-asyncio-rates", exc)
        out = []
        t = threading.Thread(target=worker, args=(i, out), name=f"Thread-{i + 4} (worker)")
        t.start()
        t.join()
        capture("python-thread-json", out[0])
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("bug", "python-message-cache-miss")
            sentry_sdk.capture_message(f"cache miss for <Order object at 0x7f3a{i}c2e1d0> after {i * 3 + 2} ms "
                                       f"on Tue, 0{i + 1} Dec 2026 10:15:0{i} GMT")
    sentry_sdk.flush(10)


if __name__ == "__main__":
    main()
