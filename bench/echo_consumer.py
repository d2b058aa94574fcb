"""The bare RabbitMQ request/reply floor: a trivial consumer that answers every request (a
Celery-format task message) with a tiny API message to its ``Server-ID``.

It does what a whapp must do at the least (decode, reply) and nothing else, so a whapp's
throughput beside this one's tells what Celery and the whapp's own work cost. It answers
through the same lean publisher as the whapps (:class:`whistle_tasks.core.amqp.Publisher`,
``publish_api``): a floor slowed by a heavier publish path (kombu's ``Producer.publish``,
which the workers dropped) would flatter the system under test.
"""

from __future__ import annotations

import sys

from kombu import Connection, Consumer, Exchange, Queue

from whistle_tasks.core.amqp import Publisher

QUEUE = "bench-echo"
KEY = "bench.echo.*"


def main(url: str) -> None:
    callmgr = Exchange("callmgr", type="topic", durable=True)
    publisher = Publisher(url)
    with Connection(url) as conn:
        channel = conn.channel()
        queue = Queue(QUEUE, exchange=callmgr, routing_key=KEY, durable=False,
                      auto_delete=True)

        def on_message(body: object, message: object) -> None:
            request = body[0][0]  # Celery protocol 2: [args, kwargs, embed]
            answer = {"Msg-ID": request["Msg-ID"], "Event-Category": "bench",
                      "Event-Name": "echo", "App-Name": "echo", "App-Version": "0"}
            publisher.publish_api(answer, "targeted", request["Server-ID"])
            message.ack()

        channel.basic_qos(0, 64, False)
        consumer = Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"])
        consumer.consume()
        print("echo consumer ready", flush=True)
        while True:
            conn.drain_events()


if __name__ == "__main__":
    main(sys.argv[1])
