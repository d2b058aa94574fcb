"""The callflow modules that ship with Whistle, one file per family (their data is declared
in :mod:`schemas.callflow`). Each is ``fn(call, data, context) -> outcome``, registered with
:func:`whistle_tasks.whapps.callflow.registry.module`."""
