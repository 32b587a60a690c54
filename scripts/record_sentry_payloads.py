"""Record the event payloads real sentry-sdk releases build, as test data for the gateway.

Services in the field run sentry-sdk 2.x and 3.x side by side, but one environment
holds one of them. This script installs each version given (default: the newest 2.x
and 3.x the project tests) into a throwaway venv, runs ``tests.support.apps.sentry_payloads``
there, and writes ``tests/data/sentry_sdk/python-<version>.jsonl``: one event per line,
with the checkout's path replaced by ``/app`` so the files do not depend on where
they were recorded. Re-run it when a new major or a changed payload shape appears:

    python scripts/record_sentry_payloads.py 2.76.0 3.0.0
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "sentry_sdk"
DEFAULT_VERSIONS = ("2.76.0", "3.0.0")


def record(version: str) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"sentry-sdk-{version}-") as tmp:
        venv.create(tmp, with_pip=True)
        python = str(Path(tmp) / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "-q", f"sentry-sdk=={version}"], check=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([python, "-m", "tests.support.apps.sentry_payloads"], check=True, capture_output=True,
                             cwd=ROOT, env=env, timeout=120).stdout
    text = out.decode().replace(str(ROOT), "/app")
    target = OUT / f"python-{version}.jsonl"
    target.write_text(text)
    return target


def main(argv: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for version in argv or DEFAULT_VERSIONS:
        target = record(version)
        print(f"{target.relative_to(ROOT)}: {len(target.read_text().splitlines())} events")


if __name__ == "__main__":
    main(sys.argv[1:])
