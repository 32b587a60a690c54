-- What Sentry SDKs (and errstream's middleware) send about the request and the user, kept
-- per event: request headers (credentials already "[Filtered]" by the SDK or the gateway),
-- the scrubbed query string, the user's name and address (hashed when
-- ERRSTREAM_SCRUB_IP_ADDRESSES is set).
ALTER TABLE {db}.error_events
    ADD COLUMN IF NOT EXISTS request_query_string String CODEC(ZSTD(1)) AFTER request_url,
    ADD COLUMN IF NOT EXISTS request_headers Map(LowCardinality(String), String) CODEC(ZSTD(3)) AFTER request_query_string,
    ADD COLUMN IF NOT EXISTS user_username String CODEC(ZSTD(1)) AFTER user_hash,
    ADD COLUMN IF NOT EXISTS user_ip String CODEC(ZSTD(1)) AFTER user_username;
