"""Whistle's HTTP front ends, served by gunicorn (a real WSGI server): the media service
(:mod:`whistle_tasks.web.media`: audio to and from the FreeSWITCH nodes, by signed URL) and
the REST API v1 with its console (``api/``).

Like the CLI, a front end is an entry point: it reads through ``whistle_tasks.data`` and
writes through ``whistle_tasks.ops`` (the same code the CLI runs), never a second path.
"""
