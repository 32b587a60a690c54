"""Benchmarks that print numbers (``errstream bench …``). Not shipped in the wheel; run from a checkout."""
