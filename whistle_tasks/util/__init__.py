"""Small helpers shared by every Whistle process: numbers, JSON paths, conversions, timers,
the two-tier cache and logging. Import the module you need (``from whistle_tasks.util.cache
import Cache``); nothing is re-exported here, so importing ``numbers`` does not load Redis.
"""
