"""``python -m switch_bridge`` (also ``whistle bridge``): run a switch bridge.

gevent patches the standard library before anything else is imported, so kombu, redis and
requests all cooperate with the bridge's greenlets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from whistle_tasks.core import log  # noqa: E402
from whistle_tasks.core.config import load  # noqa: E402


def main() -> int:
    settings = load()
    log.setup(settings.log_level, settings.log_target)
    from switch_bridge.host import serve

    try:
        serve(settings)
    except ValueError as exc:  # configuration errors: one clear line
        print(f"whistle bridge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
