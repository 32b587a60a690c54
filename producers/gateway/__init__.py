"""HTTP ingestion gateway: our JSON schema and Sentry's ingestion protocol → the ``errors`` topic."""
