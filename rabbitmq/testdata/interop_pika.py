"""Foreign AMQP client for rabbitmq/interop_test.go, using pika.

  interop_pika.py publish URL EXCHANGE
      Publishes the foreign message below to EXCHANGE with publisher
      confirms, as a pika service would (no message_id).
  interop_pika.py get URL QUEUE COUNT TIMEOUT
      Gets COUNT messages from QUEUE (basic_get, acknowledging each),
      waiting at most TIMEOUT seconds in all, and prints one JSON object per
      message: routing key, exchange, properties, body in hex and each
      header as {"type": pika's Python type, "hex": its bytes in hex (str:
      UTF-8), "value": the value for other types}.
"""
import datetime
import decimal
import json
import sys
import time

import pika

FOREIGN_TIMESTAMP = 1767323045  # 2026-01-02T03:04:05Z
FOREIGN_HEADERS = {
    "text": "ünïcode",
    "bytes": b"\xfe\x00\xff",
    "int": 42,
    "neg": -7,
    "bool": True,
    # pika cannot write floats; the unit tests cover them.
    "dec": decimal.Decimal("123.45"),
    "time": datetime.datetime(2026, 1, 2, 3, 4, 5),
    "none": None,
    "table": {"b": 2, "a": "x", "n": {"t": ["s", 1, False]}},
    "array": ["x", 3, None, b"raw"],
}


def connect(url):
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def publish(url, exchange):
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            exchange=exchange,
            routing_key="orders.eu",
            body=b"\x00\xff pika body",
            properties=pika.BasicProperties(
                delivery_mode=2,
                timestamp=FOREIGN_TIMESTAMP,
                content_type="application/octet-stream",
                headers=FOREIGN_HEADERS,
            ),
            mandatory=True,
        )
    finally:
        conn.close()


def header_json(v):
    if isinstance(v, bytes):
        return {"type": "bytes", "hex": v.hex()}
    if isinstance(v, str):
        return {"type": "str", "hex": v.encode("utf-8").hex()}
    return {"type": type(v).__name__, "value": repr(v)}


def get(url, queue, count, timeout):
    conn = connect(url)
    deadline = time.monotonic() + timeout
    got = 0
    try:
        ch = conn.channel()
        while got < count and time.monotonic() < deadline:
            method, props, body = ch.basic_get(queue=queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got += 1
            print(json.dumps({
                "routing_key": method.routing_key,
                "exchange": method.exchange,
                "message_id": props.message_id,
                "delivery_mode": props.delivery_mode,
                "timestamp": props.timestamp,
                "body_hex": body.hex(),
                "headers": {k: header_json(v) for k, v in (props.headers or {}).items()},
            }), flush=True)
    finally:
        conn.close()
    if got < count:
        sys.exit(f"interop_pika.py: got {got} of {count} messages from {queue} within {timeout}s")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "get":
        get(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit("usage: interop_pika.py publish URL EXCHANGE | get URL QUEUE COUNT TIMEOUT")


if __name__ == "__main__":
    main()
