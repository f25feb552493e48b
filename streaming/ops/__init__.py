"""Operating the fleet: the recorder of workers, sessions and load, load itself, metrics, health,
status, cleanup, the admin's actions and the load dashboard.

May import every other layer of the engine; nothing below imports it.
"""
