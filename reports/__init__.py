"""The read side: queries over the ClickHouse views and the renderers of ``errstream report``."""
