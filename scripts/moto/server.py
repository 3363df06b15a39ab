"""moto in server mode for scripts/brokers, with two changes for mq's tests.

1. A fix. moto (checked on 5.2.5) hands a Binary message attribute that
   SNS delivers to an SQS queue with raw message delivery to its SQS model
   as the base64 text SNS keeps, where the SQS model expects bytes: every
   ReceiveMessage that would return such a message then fails with HTTP
   500 ("Strings must be encoded before hashing"), and the queue is stuck.
   AWS delivers the attribute's bytes. The fix decodes such a value before
   the message is stored; values sent through SQS's own API are bytes
   already and pass unchanged.

2. Speed. On every ReceiveMessage, moto's SQS model computes all of the
   queue's attributes (counting visible, delayed and in-flight messages)
   once per message returned, to read its retention period, and reads the
   clock through datetime arithmetic for each stored message: a receive
   from a queue of 1000 messages took about a second of CPU, so a test
   publishing 1000 messages took minutes to drain. The patch reads the
   retention period from the queue and the clock with time.time(): the
   same values, without the work.

Nothing else is changed, and requests are not logged (errors are).
Usage: python server.py -H 127.0.0.1 -p PORT
(moto_server's arguments).
"""

import base64
import logging
import sys
import time

import moto.sqs.models as sqs_models
from moto.server import main

_send_message = sqs_models.SQSBackend.send_message


def _send_message_bytes(self, queue_name, message_body, message_attributes=None, *args, **kwargs):
    for value in (message_attributes or {}).values():
        if isinstance(value, dict) and isinstance(value.get("BinaryValue"), str):
            value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
    return _send_message(self, queue_name, message_body, message_attributes, *args, **kwargs)


_unix_time = sqs_models.unix_time


def _fast_unix_time(dt=None):
    return time.time() if dt is None else _unix_time(dt)


def _fast_unix_time_millis(dt=None):
    return _fast_unix_time(dt) * 1000.0


def _retained(self, queue_name, message):
    queue = self.get_queue(queue_name)
    return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()


def patch():
    sqs_models.SQSBackend.send_message = _send_message_bytes
    sqs_models.unix_time = _fast_unix_time
    sqs_models.unix_time_millis = _fast_unix_time_millis
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retained


if __name__ == "__main__":
    patch()
    # One line per request would fill the log; errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sys.exit(main(sys.argv[1:]))
