"""Whistle's HTTP-facing runtime, served by gunicorn (a real WSGI server): the media service
(:mod:`whistle_tasks.web.media`) now, the REST API beside it later. A peer of the whapps in
the layers: it reads and writes through ``data`` and ``core``, never imports a whapp."""
