"""A whapp written with the Call API, run outside Celery for test_call_control.py.

    python tests/drive_call.py SERVER_ID

Run by the test with its environment (the test's vhost, prefix and db). Waits for the
route_win the bridge sends to SERVER_ID (a Celery task message on
``targeted``), then drives the call: answer, play, collect digits, set, bridge, hangup,
printing what each returned.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kombu import Connection, Consumer, Queue  # noqa: E402

from whistle_tasks.core import amqp  # noqa: E402
from whistle_tasks.core.config import settings  # noqa: E402
from whistle_tasks.whapps.callflow.call import Call  # noqa: E402


def main(server_id: str) -> None:
    wins: list[dict] = []
    with Connection(settings.amqp_url) as conn:
        queue = Queue(server_id, exchange=amqp.TARGETED, routing_key=server_id,
                      exclusive=True, auto_delete=True)
        with Consumer(conn.channel(), queues=[queue], accept=["json"], no_ack=True,
                      callbacks=[lambda body, message: wins.append(body[0][0])]):
            while not wins:
                conn.drain_events(timeout=30)
    call = Call.from_route_win(wins[0])
    call.answer()
    print("play=" + call.play("ivr/welcome.wav"), flush=True)
    print("digits=" + call.collect_digits(max_digits=4, media="ivr/enter.wav"), flush=True)
    call.set(Choice="42")
    print("bridge=" + call.bridge([{"Invite-Format": "route",
                                    "Route": "sip:42@192.0.2.42"}], timeout=20), flush=True)
    call.hangup()
    call.close()


if __name__ == "__main__":
    main(sys.argv[1])
