"""Migrations form one strictly increasing sequence, so their order never rests on a tie-break of names."""

from __future__ import annotations

import re

from sinks.clickhouse.migrate import RENAMED, migration_files

NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def test_migration_numbers_run_one_to_n_without_gaps_or_twins() -> None:
    names = [name for name, _ in migration_files()]
    numbers = []
    for name in names:
        match = NAME.match(name)
        assert match, f"{name}: migrations are named NNNN_what.sql"
        numbers.append(int(match[1]))
    assert numbers == list(range(1, len(names) + 1)), names


def test_former_names_map_onto_current_files_in_the_same_order() -> None:
    names = [name for name, _ in migration_files()]
    assert set(RENAMED.values()) <= set(names)
    assert not set(RENAMED) & set(names), "a former name cannot be a current one"
    # The old names sorted as the current ones do: a database that applied a prefix of the old order
    # applied a prefix of the new one.
    assert [RENAMED[n] for n in sorted(RENAMED)] == sorted(RENAMED.values())
