-- Issue workflow state beyond the status (schemas/issue_status.py): what a change did, the assignee,
-- "ignore until" conditions and "resolve in the next release". DEFAULTs keep older writers and rows valid.
ALTER TABLE {db}.issue_status_history
    ADD COLUMN IF NOT EXISTS action                  LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS assignee                String DEFAULT '',
    ADD COLUMN IF NOT EXISTS ignore_until            Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS ignore_until_events     Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS ignore_events_baseline  Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS resolved_in_next_release UInt8 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS resolved_releases       Array(String) DEFAULT [];

ALTER TABLE {db}.issue_status
    ADD COLUMN IF NOT EXISTS action                  LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS assignee                String DEFAULT '',
    ADD COLUMN IF NOT EXISTS ignore_until            Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS ignore_until_events     Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS ignore_events_baseline  Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS resolved_in_next_release UInt8 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS resolved_releases       Array(String) DEFAULT [];

-- The view that keeps the latest change per issue must copy the new columns too.
DROP VIEW IF EXISTS {db}.issue_status_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.issue_status_mv TO {db}.issue_status AS
SELECT fingerprint, status, changed_at, changed_by, note, action, assignee, ignore_until, ignore_until_events,
       ignore_events_baseline, resolved_in_next_release, resolved_releases
FROM {db}.issue_status_history;
