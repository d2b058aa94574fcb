"""Whistle's HTTP front ends, served by gunicorn: the REST API v1 and its console (``api/``).

Like the CLI, a front end is an entry point: it reads through ``whistle_tasks.data`` and
writes through ``whistle_tasks.ops`` (the same code the CLI runs), never a second path.
"""
