"""The callflow whapp (queue ``callflow``): parked calls driven by callflows.

A callflow is a tree of modules (:mod:`schemas.callflow`); the engine (:mod:`.engine`) runs
it one node at a time. A module is ``fn(call, data, context) -> outcome`` registered with
:func:`module`; a call app, a function of the call alone, with :func:`call_app`. See
:mod:`whistle_tasks.whapps.callflow.call` for the Call API, ``modules/`` for the built-in
modules and ``apps/attendant.py`` for a whole call app.
"""

from whistle_tasks.whapps.callflow.registry import call_app, module

__all__ = ["call_app", "module"]
