"""The ``cdr`` whapp: one call detail record per call leg, and the live index of calls.

* :mod:`.record`: a ``CHANNEL_HANGUP_COMPLETE`` call event → a record (pure);
* :mod:`.writer`: records → their monthly databases, in bulk, idempotent by leg;
* :mod:`.live`: the calls in progress, per account, in Redis (what the API lists);
* :mod:`.consumer`: the worker's consumer of the hangup events (and of the events that
  feed the live index), acknowledging only after the bulk write;
* :mod:`.retention`: old monthly databases dropped (``cdr.retention``, beat).
"""
