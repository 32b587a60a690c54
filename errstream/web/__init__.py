"""The triage web app and REST API (``errstream web``): FastAPI pages and endpoints over the read side."""
