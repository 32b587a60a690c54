-- Archive "until escalating" (docs/detection.md#escalating-issues): the forecast the archive carries, and the
-- status `escalating` detection gives the issue when its volume beats that forecast (an open status).
-- Adding a value at the end of an Enum8 is a change of metadata only, also for a column of the sorting key.
ALTER TABLE {db}.issue_status_history
    MODIFY COLUMN status Enum8('new' = 1, 'acknowledged' = 2, 'investigating' = 3, 'resolved' = 4, 'ignored' = 5,
                               'escalating' = 6),
    ADD COLUMN IF NOT EXISTS ignore_until_escalating UInt8 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS escalating_forecast     Array(UInt32) DEFAULT [];

ALTER TABLE {db}.issue_status
    MODIFY COLUMN status Enum8('new' = 1, 'acknowledged' = 2, 'investigating' = 3, 'resolved' = 4, 'ignored' = 5,
                               'escalating' = 6),
    ADD COLUMN IF NOT EXISTS ignore_until_escalating UInt8 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS escalating_forecast     Array(UInt32) DEFAULT [];

-- The view that keeps the latest change per issue must copy the new columns too.
DROP VIEW IF EXISTS {db}.issue_status_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.issue_status_mv TO {db}.issue_status AS
SELECT fingerprint, status, changed_at, changed_by, note, action, assignee, ignore_until, ignore_until_events,
       ignore_events_baseline, resolved_in_next_release, resolved_releases, ignore_until_escalating,
       escalating_forecast
FROM {db}.issue_status_history;
