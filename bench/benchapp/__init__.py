"""Bench-only Django app for our server: ten plain services so scenarios 3 and 5 have distinct streams."""
