"""The librdkafka side of the kafka driver's interoperability tests
(kafka/rdkafka_test.go), run with the python of the virtualenv scripts/pyenv
makes (confluent-kafka, which bundles librdkafka).

Usage: python rdkafka.py MODE BOOTSTRAP TOPIC [ARGS...]

  consume BOOTSTRAP TOPIC GROUP [STRATEGY]
      A consumer in GROUP with read_committed and librdkafka's default
      partition.assignment.strategy (range,roundrobin) unless STRATEGY is
      given. Prints "ASSIGNED p,p,..." (sorted; "ASSIGNED" alone for none)
      and "REVOKED p,..." on rebalances and "RECORD partition offset value"
      per record, commits after each batch and before giving partitions
      up, and stops (commit, leave, "CLOSED", exit 0) when its stdin
      closes.
  binary BOOTSTRAP TOPIC
      Produces three records to partition 0 with binary keys, values and
      header values (the bytes are in rdkafka_test.go); prints
      "DELIVERED partition offset" for each.
  keys BOOTSTRAP TOPIC KEYHEX...
      Produces one record per key (value: the key in hex) with
      partitioner=murmur2_random; prints "KEY keyhex partition" for each.
  read BOOTSTRAP TOPIC N
      Reads N records from the start of every partition without a group;
      prints one JSON object per record: partition, offset, key and value
      in hex (null for null), headers as [key, value hex or null] pairs.
  txn BOOTSTRAP TOPIC
      A transactional producer: commits c1-0..c1-2, aborts a-0..a-2,
      commits c2-0..c2-1; prints "DONE".

Every error librdkafka reports (the error callback, an error event from
poll, a KafkaException) prints "EXCEPTION ..."; an exception also exits 2.
Nothing waits unbounded: each mode gives up after 60 seconds.
"""
import json
import sys
import threading
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

_out = threading.Lock()
DEADLINE = 60.0


def say(line):
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def on_error(err):
    say("EXCEPTION error_cb " + str(err))


def partitions(tps):
    return ",".join(str(p) for p in sorted(tp.partition for tp in tps))


def commit(c):
    """Commits the consumed offsets; nothing to commit is not an error."""
    try:
        c.commit(asynchronous=False)
    except KafkaException as e:
        if e.args[0].code() != KafkaError._NO_OFFSET:
            raise


def consume(bootstrap, topic, group, strategy=None):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "rdkafka-" + group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "error_cb": on_error,
    }
    if strategy:
        conf["partition.assignment.strategy"] = strategy
    c = Consumer(conf)
    stop = threading.Event()

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    def on_assign(consumer, tps):
        if strategy == "cooperative-sticky":
            consumer.incremental_assign(tps)
            say(("ASSIGNED " + partitions(consumer.assignment())).strip())
        else:
            say(("ASSIGNED " + partitions(tps)).strip())

    def on_revoke(consumer, tps):
        commit(consumer)
        if strategy == "cooperative-sticky":
            consumer.incremental_unassign(tps)
        say("REVOKED " + partitions(tps))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop.is_set():
        msgs = c.consume(num_messages=100, timeout=0.2)
        for m in msgs:
            if m.error():
                say("EXCEPTION poll " + str(m.error()))
                continue
            v = m.value() or b""
            say("RECORD %d %d %s" % (m.partition(), m.offset(), v.decode("utf-8", "replace")))
        if msgs:
            commit(c)
    commit(c)
    c.close()
    say("CLOSED")


def producer(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "error_cb": on_error}
    conf.update(extra)
    return Producer(conf)


def flush(p):
    if p.flush(DEADLINE) != 0:
        raise RuntimeError("records not delivered within %ds" % DEADLINE)


def binary(bootstrap, topic):
    p = producer(bootstrap)

    def report(err, m):
        if err is not None:
            say("EXCEPTION delivery " + str(err))
        else:
            say("DELIVERED %d %d" % (m.partition(), m.offset()))

    keys = [b"\x00\x01\xfe\xff", b"\xff" * 8, b"\x80"]
    for i, key in enumerate(keys):
        headers = [
            ("bin", bytes([0, 0xFF, 0x80, i])),
            ("utf", "h\u00e9llo".encode("utf-8")),
            ("empty", b""),
            ("null", None),
        ]
        p.produce(topic, value=bytes([0, 0xFF, 0xFE, i]), key=key, partition=0, headers=headers, on_delivery=report)
        flush(p)  # one at a time: offsets in order


def keys(bootstrap, topic, *hexkeys):
    p = producer(bootstrap, partitioner="murmur2_random")

    def report(err, m):
        if err is not None:
            say("EXCEPTION delivery " + str(err))
        else:
            say("KEY %s %d" % (m.key().hex(), m.partition()))

    for k in hexkeys:
        p.produce(topic, value=k.encode(), key=bytes.fromhex(k), on_delivery=report)
    flush(p)


def read(bootstrap, topic, n):
    n = int(n)
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "rdkafka-read-" + topic,  # required, never joined
        "enable.auto.commit": False,
        "error_cb": on_error,
    })
    md = c.list_topics(topic, timeout=DEADLINE)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    got = 0
    deadline = time.monotonic() + DEADLINE
    while got < n:
        if time.monotonic() > deadline:
            raise RuntimeError("read %d of %d records within %ds" % (got, n, DEADLINE))
        for m in c.consume(num_messages=n - got, timeout=0.2):
            if m.error():
                say("EXCEPTION poll " + str(m.error()))
                continue
            got += 1
            k, v = m.key(), m.value()
            say(json.dumps({
                "partition": m.partition(),
                "offset": m.offset(),
                "key": None if k is None else k.hex(),
                "value": None if v is None else v.hex(),
                "headers": [[hk, None if hv is None else hv.hex()] for hk, hv in (m.headers() or [])],
            }))
    c.close()


def txn(bootstrap, topic):
    p = producer(bootstrap, **{"transactional.id": "mqtest-rdkafka-" + topic})
    p.init_transactions(DEADLINE)
    for prefix, n, commit_it in (("c1", 3, True), ("a", 3, False), ("c2", 2, True)):
        p.begin_transaction()
        for i in range(n):
            p.produce(topic, key=b"k", value=("%s-%d" % (prefix, i)).encode())
        flush(p)
        if commit_it:
            p.commit_transaction(DEADLINE)
        else:
            p.abort_transaction(DEADLINE)
    say("DONE")


MODES = {"consume": consume, "binary": binary, "keys": keys, "read": read, "txn": txn}


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in MODES:
        sys.stderr.write(__doc__)
        sys.exit(64)
    try:
        MODES[sys.argv[1]](*sys.argv[2:])
    except Exception as e:  # noqa: BLE001 - every failure is reported
        say("EXCEPTION " + repr(e).replace("\n", " "))
        raise SystemExit(2)


if __name__ == "__main__":
    main()
