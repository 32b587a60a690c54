"""``errstream notify``: the process and its alerts consumer (store, route, deliver)."""
