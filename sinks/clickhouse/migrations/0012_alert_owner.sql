-- The owner an alert was routed to: the issue's assignee, else the first ownership rule that matches
-- (ERRSTREAM_OWNERSHIP_RULES); '' for none. Alerts stored before it read ''.
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS owner String DEFAULT '' AFTER details
