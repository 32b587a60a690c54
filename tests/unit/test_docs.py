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


# --- paths written in the text ---------------------------------------------------------------------
# A path in backticks (`sinks/clickhouse/rows.py`, `tests/e2e/test_notify.py::test_x`, `docs/web.md`) or a
# bare file name (`rows.py`) names a room of this repository; when the room moves, the map must follow.
TRACKED = sorted({p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                  if ".git" not in p.parts and ".venv" not in p.parts and "__pycache__" not in p.parts
                  and not any(part.endswith(".egg-info") or part.startswith(".venv") for part in p.parts)})
TOP_LEVEL = {p.split("/")[0] for p in TRACKED}
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_FILE_EXT = r"\.(?:py|sql|md|toml|ya?ml|sh|txt|html|js|css|jsonl|json|cfg)"
# A bare name of the repository's own kinds of file (`rows.py`, `0014_sink_batches.sql`): example file names
# of other languages (`main.3f9a2c.js` in the grouping docs) are not rooms of this house.
_BARE_FILE = re.compile(r"^[\w.-]+\.(?:py|sql|toml|sh)$")
RUNTIME_PREFIXES = (".errstream/",)  # ERRSTREAM_HOME: made when errstream runs, not part of the repository
EXAMPLES = {"views.py"}  # a file name quoted inside an example log message (docs/grouping.md)


def _repo_path_candidates(text: str) -> list[str]:
    found = []
    for span in _CODE_SPAN.findall(_FENCE.sub("", text)):
        token = span.strip().split("::")[0].rstrip(",.:;)")
        token = re.sub(r":\d+(?:-\d+)?$", "", token)  # file.py:42
        if " " in token or token.startswith(("http", "../", "/", "~", "$", *RUNTIME_PREFIXES)) or "{" in token \
                or "<" in token or token in EXAMPLES:
            continue
        head = token.split("/")[0]
        if "/" in token and head in TOP_LEVEL:
            found.append(token)
        elif _BARE_FILE.match(token):
            found.append(token)
    return found


def _exists(token: str) -> bool:
    if "*" in token:
        return any(ROOT.glob(token))
    if "/" in token:
        return (ROOT / token.rstrip("/")).exists()
    return any(p == token or p.endswith("/" + token) for p in TRACKED)


@pytest.mark.parametrize("page", [p for p in USER_DOCS if p.name != "CHANGELOG.md"], ids=_rel)
def test_every_repository_path_written_in_a_page_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted({t for t in _repo_path_candidates(text) if not _exists(t)})
    missing += sorted({link for link in _links(page) if not link.startswith(("http", "#", "mailto:"))
                       and not link.startswith("../") and not (page.parent / link.split("#")[0]).exists()})
    assert not missing, f"{_rel(page)} names paths that do not exist: {missing}"


PRODUCT_PACKAGES = ("schemas", "errstream_core", "producers", "stream_processors", "sinks", "reports", "errstream",
                    "bench")


def test_the_architecture_map_names_every_package_and_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("## Where each concern lives"):]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    missing = []
    for package in PRODUCT_PACKAGES:
        for module in sorted((ROOT / package).rglob("*.py")):
            folder = module.parent.relative_to(ROOT).as_posix() + "/"
            row = rows.get(folder)
            if row is None or (module.name != "__init__.py" and f"`{module.name}`" not in row):
                missing.append(module.relative_to(ROOT).as_posix())
    assert not missing, f"docs/architecture.md's table does not list: {missing}"
