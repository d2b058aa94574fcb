"""Call-control whapps (queue ``callflow``): write a whapp as a Python function of a call.

See :mod:`whistle_tasks.callflow.call` for the API and ``apps/attendant.py`` for a whole one.
"""

from whistle_tasks.callflow.registry import whapp

__all__ = ["whapp"]
