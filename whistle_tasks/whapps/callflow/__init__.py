"""The callflow whapp (queue ``callflow``): parked calls driven by call apps.

A call app is a Python function of a call (:func:`call_app`); see
:mod:`whistle_tasks.whapps.callflow.call` for the API and ``apps/attendant.py`` for a whole one.
"""

from whistle_tasks.whapps.callflow.registry import call_app

__all__ = ["call_app"]
