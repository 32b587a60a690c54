"""The issue stream and the issue page, read from ClickHouse: what ``errstream web`` shows and serves.

Every query reads the incrementally maintained tables through the analysts' views
(``v_error_groups`` for issues, ``error_counts_1h`` for counts and sparklines); raw
events (``error_events``) are read only for one issue at a time (its events, tags,
first/last release) or for a text search in messages. Every user value is a bound
query parameter, never pasted into SQL.

The workflow state shown here is the latest change in ``issue_status`` with two
conditions the status alone cannot express evaluated at read time:

* ``ignored`` with an ``ignore_until`` time in the past, or with at least
  ``ignore_until_events`` more events than when it was ignored, reads as ``new``;
* ``resolved`` reads as ``regressed`` once seen again after the resolution — for a
  resolution "in the next release", only when a release unknown at the resolution
  has appeared.

The package: ``models`` (what the API returns), ``sql`` (the shared SQL), ``cursor`` (times and page
cursors), ``queries`` (``IssueQueries``). The names below are its public face.
"""
