"""How the local broker's JVM is started: a quick compiler and a class-data archive.

The local broker lives for a test, a benchmark or a demo, not for months. Measured on a 2-core
machine (``docs/performance.md``, "Local broker start-up"), HotSpot's optimising C2 compiler spent
more CPU than the broker's own request handling: about 2 s of compile threads to start and another
1.5 s during a 20,000-event publish and read. ``-XX:TieredStopAtLevel=1`` keeps the quick C1
compiler only, which halves the broker's CPU in such runs. A long-lived production broker is a
different trade (C2 pays off over hours) and is not started by this module.

Class loading is the other start-up cost: Kafka loads about 9,000 classes. The first broker started
from a jar cache writes a dynamic class-data-sharing archive when it exits
(``-XX:ArchiveClassesAtExit``); later brokers map it (``-XX:SharedArchiveFile``) and start in about
a third of the CPU. The archive is tied to the JVM build and the exact class path, so its name
carries both; a JVM that cannot use it ignores it (``-Xshare:auto``, the default) and starts as usual.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

JIT_OPTIONS = ("-XX:TieredStopAtLevel=1",)


def class_path(lib: Path) -> str:
    """Every jar of ``lib`` in name order: the same string on every start, as the archive requires."""
    return ":".join(str(p) for p in sorted(lib.resolve().glob("*.jar")))


def _jvm_identity(cp: str) -> str:
    java = shutil.which("java") or "java"
    try:
        st = os.stat(os.path.realpath(java))
        build = f"{os.path.realpath(java)}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        build = java
    return hashlib.sha256(f"{build}\n{cp}".encode()).hexdigest()[:16]


class ClassArchive:
    """The class-data archive of one jar directory, created by the first JVM that exits cleanly."""

    def __init__(self, lib: Path, cp: str) -> None:
        self.path = lib.parent / f"classes-{_jvm_identity(cp)}.jsa"

    def options(self, pending: Path) -> list[str]:
        """Options for a new JVM. Without an archive yet, the JVM writes one at exit to a file of its own
        (brokers run side by side), named in ``pending`` so that ``adopt`` can install it."""
        if self.path.exists():
            pending.unlink(missing_ok=True)
            return [f"-XX:SharedArchiveFile={self.path}"]
        scratch = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        pending.write_text(str(scratch))
        return [f"-XX:ArchiveClassesAtExit={scratch}"]

    def adopt(self, pending: Path) -> None:
        """After the JVM stopped: install the archive it wrote (a killed JVM writes none)."""
        try:
            scratch = Path(pending.read_text().strip())
        except OSError:
            return
        pending.unlink(missing_ok=True)
        if scratch.is_file() and scratch.stat().st_size > 0 and not self.path.exists():
            os.replace(scratch, self.path)
        scratch.unlink(missing_ok=True)
