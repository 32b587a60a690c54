-- The event's own timestamp when the worker replaced it by the receive time (it was outside the
-- accepted window around the receive time, or outside what DateTime holds: see docs/ingestion.md).
-- ISO 8601 text, because the original may be any year from 1 to 9999; '' when the timestamp was kept.
ALTER TABLE {db}.error_events ADD COLUMN IF NOT EXISTS original_timestamp String DEFAULT '' CODEC(ZSTD(1));
