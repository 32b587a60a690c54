"""Platform-aware frame rules: which frames are the app's, which group, and their canonical names.

Grouping keys a stack by ``module.function`` of the app's frames. What that means differs per platform:
a JVM names generated classes per process (``$Proxy12``, ``$$Lambda$14/0x…``), a JavaScript build
renames functions and content-hashes its files, Go numbers closures and its SDK decides in-app from build
paths, .NET compiles ``async`` methods into numbered state machines. One readable rules file per platform
(``java.toml``, ``javascript.toml``, ``go.toml``, ``csharp.toml``, ``python.toml``, plus ``common.toml``
for all), in the spirit of Sentry's grouping enhancers, holds those facts as data, each rule with its
reason; ``docs/grouping.md`` lists them.

A rules file has ``[[rewrite]]`` rules (a regular expression on the module, function or file name) and
``[[frame]]`` rules (globs on module, function and path; ``app`` overrides the SDK's in_app, ``group =
false`` keeps the frame out of the key; later rules win). Rules are compiled once; a frame's verdict is
memoised on its fields, since the same frames recur in every event of an issue.

Hostile input: every function here takes any strings (or None) and never raises; a bad rules file fails
at import, in tests, never on an event.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

_HERE = Path(__file__).resolve().parent
MAX_NAME = 512  # longer names are cut before any rule runs: no regex sees a megabyte
MAX_CONTEXT = 120  # a longer source line is minified or generated code: not used (as in Sentry)
_URL_PREFIX = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//[^/]*|^[a-z]+:///?|^[A-Za-z]:(?=/)")
_SOURCE_SUFFIX = re.compile(r"\.(?:py[cwo]?|pyx|js|mjs|cjs|jsx|ts|tsx|rb|java|kt|scala|groovy|clj|go|cs|vb|fs)$")
_PACKAGE_DIRS = ("/site-packages/", "/dist-packages/", "/node_modules/")
_SPACES = re.compile(r"\s+")


class Rewrite(NamedTuple):
    field: str
    pattern: re.Pattern[str]
    replace: str
    why: str


@dataclass(frozen=True)
class FrameRule:
    module: re.Pattern[str] | None
    function: re.Pattern[str] | None
    path: re.Pattern[str] | None
    app: bool | None
    group: bool | None
    why: str

    def matches(self, module: str, function: str, path: str) -> bool:
        return ((self.module is None or self.module.fullmatch(module) is not None)
                and (self.function is None or self.function.fullmatch(function) is not None)
                and (self.path is None or self.path.fullmatch(path) is not None))


@dataclass(frozen=True)
class PlatformRules:
    name: str
    platforms: tuple[str, ...]
    rewrites: tuple[Rewrite, ...]
    frames: tuple[FrameRule, ...]
    meaningless_functions: frozenset[str] = frozenset({"?"})
    module_from_path: bool = False
    app_by_rules: bool = False
    minified_function: re.Pattern[str] | None = None
    bundle_file: re.Pattern[str] | None = None
    by_field: dict[str, tuple[Rewrite, ...]] = field(default_factory=dict)
    # (pattern on the module, functions it applies to): the method a compiler-generated type stands for
    method_from_module: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = ()


class FrameVerdict(NamedTuple):
    """What grouping needs of one frame: its key, and its role."""

    key: str
    in_app: bool
    group: bool
    meaningful: bool  # False when the name says nothing (minified, ``<module>`` without a source line)
    named: bool = True  # False for module-level and anonymous code (``<module>``, ``Object.<anonymous>``)
    module: str = "?"  # the canonical module and function, for the culprit
    function: str = "?"
    short: bool = False  # a name shaped like a minifier's, in a file not known to be a bundle


def _glob(patterns: Any) -> re.Pattern[str] | None:
    if patterns is None:
        return None
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    return re.compile("|".join("(?:" + ".*".join(re.escape(p) for p in item.split("*")) + ")" for item in items),
                      re.DOTALL)


def load(name: str) -> PlatformRules:
    """The rules of ``<name>.toml`` with common.toml's first."""
    data = tomllib.loads((_HERE / f"{name}.toml").read_text())
    common = tomllib.loads((_HERE / "common.toml").read_text()) if name != "common" else {}
    rewrites = tuple(Rewrite(r["field"], re.compile(r["pattern"]), r["replace"], r["why"])
                     for r in [*common.get("rewrite", []), *data.get("rewrite", [])])
    for r in rewrites:
        if r.field not in ("module", "function", "file"):
            raise ValueError(f"{name}.toml: rewrite field {r.field!r} is not module, function or file")
    frames = tuple(FrameRule(_glob(r.get("module")), _glob(r.get("function")), _glob(r.get("path")),
                             r.get("app"), r.get("group"), r["why"])
                   for r in [*common.get("frame", []), *data.get("frame", [])])
    minified, bundle = data.get("minified_function"), data.get("bundle_file")
    return PlatformRules(
        name=name, platforms=tuple(data.get("platforms", [name])), rewrites=rewrites, frames=frames,
        meaningless_functions=frozenset(data.get("meaningless_functions", ["?"])),
        module_from_path=bool(data.get("module_from_path", False)), app_by_rules=bool(data.get("app_by_rules", False)),
        minified_function=re.compile(minified) if minified else None,
        bundle_file=re.compile(bundle) if bundle else None,
        by_field={f: tuple(r for r in rewrites if r.field == f) for f in ("module", "function", "file")},
        method_from_module=tuple((re.compile(r["pattern"]), frozenset(r["functions"]))
                                 for r in data.get("method_from_module", [])),
    )


PLATFORM_FILES = ("python", "java", "javascript", "go", "csharp")
RULES: dict[str, PlatformRules] = {name: load(name) for name in PLATFORM_FILES}
COMMON = load("common")
_BY_PLATFORM: dict[str, PlatformRules] = {p: rules for rules in RULES.values() for p in rules.platforms}


def rules_for(platform: str | None) -> PlatformRules:
    """The rules of an event's platform (Sentry's names: ``java``, ``javascript``, ``node``, ``go``,
    ``csharp``, ``python``); common rules only for any other."""
    return _BY_PLATFORM.get((platform or "").lower(), COMMON)


def _rewrite(rules: tuple[Rewrite, ...], value: str) -> str:
    for r in rules:
        value = r.pattern.sub(r.replace, value)
    return value


def clean_path(path: str) -> str:
    """Forward slashes, no URL scheme/host, drive letter, query or fragment: one spelling on every OS."""
    path = path.replace("\\", "/")
    if "?" in path or "#" in path:
        path = path.split("?", 1)[0].split("#", 1)[0]
    return _URL_PREFIX.sub("", path)


def file_module(path: str, suffix: re.Pattern[str] = _SOURCE_SUFFIX) -> str:
    """A deploy-independent stand-in for a module: the path inside the package directory, else the file name
    (``path`` with forward slashes; ``suffix`` the source suffixes to drop)."""
    for marker in _PACKAGE_DIRS:
        if marker in path:
            path = path.rsplit(marker, 1)[1]
            break
    else:
        path = path.rsplit("/", 1)[-1]
    return suffix.sub("", path)


@lru_cache(maxsize=65_536)
def verdict(platform: str, module: str | None, function: str | None, path: str | None, sdk_in_app: bool | None,
            context_line: str | None) -> FrameVerdict:
    """One frame, judged by its platform's rules. Memoised: the same frames recur in every event of an issue."""
    rules = rules_for(platform)
    module = (module or "")[:MAX_NAME]
    function = (function or "")[:MAX_NAME]
    path = clean_path((path or "")[:MAX_NAME])
    for pattern, functions in rules.method_from_module:
        found = pattern.search(module) if function in functions else None
        if found is not None:  # ``Type+<Method>d__12`` . ``MoveNext`` → ``Type`` . ``Method``
            module, function = module[:found.start()], found.group(1)
    if module and not rules.module_from_path:
        name = _rewrite(rules.by_field["module"], module)
        file_like = False
    else:
        name = _rewrite(rules.by_field["file"], file_module(path)) if path else (module or "?")
        file_like = True
    func = _rewrite(rules.by_field["function"], function) if function else "?"
    in_app = bool(sdk_in_app) if not rules.app_by_rules else False
    group = True
    for rule in rules.frames:
        if rule.matches(name if not file_like else module or name, func, path):
            if rule.app is not None:
                in_app = rule.app
            if rule.group is not None:
                group = rule.group
    meaningful = named = True
    short = False
    if rules.minified_function is not None and rules.minified_function.match(func):
        if rules.bundle_file is None or rules.bundle_file.search(name):
            func, meaningful = "?", False  # a minified name: renamed by every build
        else:
            short = True  # minified or not: the stack decides (minified_frames)
    plain = func
    if func in rules.meaningless_functions or not func:
        named = False
        line = _SPACES.sub(" ", (context_line or "").strip())
        if line and len(line) <= MAX_CONTEXT:
            func = f"{func}|{line}"  # what runs there tells two module-level frames apart (as Sentry does)
        else:
            meaningful = False
    return FrameVerdict(f"{name or '?'}.{func or '?'}", in_app, group, meaningful, named, name or "?", plain or "?",
                        short)


def minified_frames(frames: list[FrameVerdict]) -> list[FrameVerdict]:
    """Frames of a file minified without a bundle-like name (``shop.js``, served minified): when most of a
    file's frames on the stack have minifier-shaped names, those names are the minifier's and go."""
    if not any(v.short for v in frames):
        return frames
    short: dict[str, int] = {}
    total: dict[str, int] = {}
    for v in frames:
        total[v.module] = total.get(v.module, 0) + 1
        if v.short:
            short[v.module] = short.get(v.module, 0) + 1
    minified = {m for m, n in short.items() if n >= 2 and 2 * n >= total[m]}
    if not minified:
        return frames
    return [v._replace(key=f"{v.module}.?", function="?", meaningful=False, short=False)
            if v.short and v.module in minified else v for v in frames]


def canonical_recursion(keys: list[str], max_period: int = 8) -> list[str]:
    """Each run of a repeating block of up to ``max_period`` frames becomes one copy of the block, rotated
    to its smallest form: where the platform cut a deep recursion (a JVM keeps the innermost 1,024 frames of
    a stack overflow, Python its recursion limit) then does not matter, nor at which frame the cut fell."""
    if len(set(keys)) == len(keys):
        return keys
    out: list[str] = []
    i, n = 0, len(keys)
    while i < n:
        best_p, best_run = 0, 0
        for p in range(1, min(max_period, (n - i) // 2) + 1):
            j = i
            while j + p < n and keys[j] == keys[j + p]:
                j += 1
            run = j - i + p
            if run >= 2 * p and run > best_run:
                best_p, best_run = p, run
        if best_p == 0:
            out.append(keys[i])
            i += 1
            continue
        block = keys[i:i + best_p]
        out.extend(min(block[k:] + block[:k] for k in range(best_p)))
        i += best_run
    return out
