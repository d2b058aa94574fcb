"""Whistle's Python side: the core libraries, the whapps, the Celery app and operations.

Importing this package builds nothing: the Celery app lives in :mod:`whistle_tasks.celery`
(``celery -A whistle_tasks worker`` finds it there, as Celery finds ``<package>.celery``),
so the bridge and the CLI can use the core without loading Celery. The layers, from the
bottom: :mod:`schemas` (the messages), :mod:`whistle_tasks.core` (settings, AMQP, CouchDB,
caches, logging), :mod:`whistle_tasks.data` (accounts, registrations...), then the whapps
(:mod:`whistle_tasks.whapps`, on :mod:`whistle_tasks.celery`) beside the switch bridge, then
operations (:mod:`whistle_tasks.ops`) and the command line (:mod:`whistle_tasks.cli`).
See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
