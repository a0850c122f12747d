"""The operator's commands behind ``onemap``: API keys and the audit log (``access``), cache seeding (``seed``).

An entry-point tier beside ``cli``: commands may open a store and build the app, which the floor never does.
"""
