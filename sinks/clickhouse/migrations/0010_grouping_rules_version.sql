-- The server-side grouping rules version each stored event was grouped with ('' for none), so an
-- analyst can tell which events a rules change regrouped (errstream rules apply; docs/grouping.md).
ALTER TABLE {db}.error_events ADD COLUMN IF NOT EXISTS grouping_rules LowCardinality(String) DEFAULT '' AFTER sample_rate
