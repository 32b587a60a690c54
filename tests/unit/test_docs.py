"""The documentation a user reads: a short README, links that work, no paths from one machine.

A README that grows back into a notebook, a link to a page that was renamed, or a path
that exists only on a developer's machine are all defects a reader meets first, so
they fail the suite like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
USER_DOCS = sorted(p for p in [README, ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
                   if p.is_file())  # a missing page fails test_required_page_exists_and_the_readme_links_to_it
README_MAX_BYTES = 12_000  # "a page or two": arroyo's and snuba's READMEs send readers to the docs
# Pages the README must lead to (issue 18): how it works, how fast, how to run it, what changed, how to help.
REQUIRED_PAGES = ["docs/architecture.md", "docs/performance.md", "docs/operations.md", "CHANGELOG.md",
                  "CONTRIBUTING.md"]
MACHINE_PATHS = re.compile(r"(?<![\w.~])/(?:work|root|home|tmp)/")

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _prose(text: str) -> str:
    """Markdown without code: links inside code blocks and spans are examples, not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path.read_text(encoding="utf-8")))


def _anchors(path: Path) -> set[str]:
    """Heading anchors as GitHub renders them: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_readme_is_a_page_or_two() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (limit {README_MAX_BYTES}): move reference material to docs/"
    )


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no file {file_part}")
        elif not linked.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {_rel(linked)}")
    assert not broken, f"{_rel(doc)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_no_absolute_machine_paths(doc: Path) -> None:
    hits = [f"line {n}: {line.strip()}" for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
            if MACHINE_PATHS.search(line)]
    assert not hits, (
        f"{_rel(doc)} names paths of one machine (refer to files relative to the repository):\n" + "\n".join(hits)
    )


@pytest.mark.parametrize("page", REQUIRED_PAGES)
def test_required_page_exists_and_the_readme_links_to_it(page: str) -> None:
    assert (ROOT / page).is_file(), f"{page} is missing"
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in _links(README)}
    assert (ROOT / page).resolve() in linked, f"README.md does not link to {page}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The helpers find a broken link and a machine path, and ignore the same inside code."""
    doc = tmp_path / "page.md"
    doc.write_text("# Title\nSee [it](missing.md), [top](#title) and /home/me/x.\n"
                   "```\n[not a link](nowhere.md) /tmp/y\n```\n`[nor](this.md)`\n", encoding="utf-8")
    assert _links(doc) == ["missing.md", "#title"]
    assert _anchors(doc) == {"title"}
    assert MACHINE_PATHS.search(doc.read_text(encoding="utf-8"))
    assert not MACHINE_PATHS.search("../shared/bench/grouping_accuracy.py and ~/.cache/errstream")
