"""What gunicorn loads: ``gunicorn whistle_tasks.web.wsgi:media`` (``whistle up`` does).

Logging is set up here, once per worker process, as every Whistle process does it (the
call-id tag, secrets masked); the applications themselves configure nothing on import.
"""

from whistle_tasks.core import log
from whistle_tasks.core.config import settings
from whistle_tasks.web.media import application as media

log.setup(settings.log_level, settings.log_target)

__all__ = ["media"]
