#!/usr/bin/env python3
"""A consumer-group member on a real Kafka client library, and the
AdminClient's group commands, for the cluster tests (tests/it/kafka_groups.rs).
Nothing here speaks the protocol itself.

  kgroup.py LIB member --bootstrap B --topic T --group G [--instance-id I]
  kgroup.py admin list --bootstrap B
  kgroup.py admin describe --bootstrap B --group G

member subscribes (LIB: confluent, confluent-consumer: librdkafka with the
consumer group protocol of KIP-848, kafka-python or aiokafka), reads from the
earliest offset when the group has none, commits synchronously after every
batch it printed, and prints one JSON line per event:
  {"type": "assigned", "partitions": [..]}   whenever its assignment changes
  {"type": "record", "partition": p, "offset": o, "value": v}
  {"type": "committed", "records": n}        after each synchronous commit
  {"type": "commit_failed", "records": n, "error": ..}  when the group moved on
  {"type": "error", "error": ..}             a consumer error (confluent)
until SIGTERM: then it closes the consumer (leaving the group; a static member,
--instance-id, confluent only, does not leave) and exits 0.
admin prints one JSON document (confluent-kafka's AdminClient).
"""

import argparse
import asyncio
import json
import signal
import sys

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000

stopping = False


def on_term(_signum, _frame):
    global stopping
    stopping = True


def emit(doc):
    print(json.dumps(doc), flush=True)


class Assignments:
    """Prints the assignment whenever it changes."""

    def __init__(self):
        self.last = None

    def update(self, partitions):
        now = sorted(partitions)
        if now != self.last:
            self.last = now
            emit({"type": "assigned", "partitions": now})


def commit(do_commit, got):
    """Commits synchronously; a commit the group refuses (a rebalance moved
    the partitions) is reported, and its records will be read again."""
    try:
        do_commit()
        emit({"type": "committed", "records": got})
    except Exception as e:  # noqa: BLE001 - every client has its own error type
        emit({"type": "commit_failed", "records": got, "error": repr(e)})


def print_batches(batches):
    """Prints the records of a kafka-python / aiokafka poll; how many."""
    got = 0
    for _tp, msgs in batches.items():
        for m in msgs:
            record(m.partition, m.offset, m.value)
            got += 1
    return got


def record(partition, offset, value):
    emit({"type": "record", "partition": partition, "offset": offset,
          "value": value.decode() if value is not None else None})


def confluent_member(args, consumer_protocol=False):
    from confluent_kafka import Consumer
    # The consumer protocol (KIP-848) takes session and heartbeat times from
    # the broker; librdkafka refuses them in the client's config.
    timing = {"group.protocol": "consumer"} if consumer_protocol else {
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
    }
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **timing,
        **({"group.instance.id": args.instance_id} if args.instance_id else {}),
    })
    seen = Assignments()
    c.subscribe([args.topic])
    while not stopping:
        msgs = c.consume(num_messages=200, timeout=0.2)
        seen.update(tp.partition for tp in c.assignment())
        got = 0
        for m in msgs:
            if m.error():
                print(f"consumer error: {m.error()}", file=sys.stderr)
                emit({"type": "error", "error": str(m.error())})
                if m.error().fatal():
                    return 1
                continue
            record(m.partition(), m.offset(), m.value())
            got += 1
        if got:
            commit(lambda: c.commit(asynchronous=False), got)
    c.close()
    return 0


def kafka_python_member(args):
    from kafka import KafkaConsumer
    c = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    seen = Assignments()
    while not stopping:
        batches = c.poll(timeout_ms=200)
        seen.update(tp.partition for tp in c.assignment())
        got = print_batches(batches)
        if got:
            commit(c.commit, got)
    c.close()
    return 0


async def aiokafka_member(args):
    from aiokafka import AIOKafkaConsumer
    c = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    await c.start()
    seen = Assignments()
    try:
        while not stopping:
            batches = await c.getmany(timeout_ms=200)
            seen.update(tp.partition for tp in c.assignment())
            got = print_batches(batches)
            if got:
                try:
                    await c.commit()
                    emit({"type": "committed", "records": got})
                except Exception as e:  # noqa: BLE001
                    emit({"type": "commit_failed", "records": got, "error": repr(e)})
    finally:
        await c.stop()
    return 0


MEMBERS = {
    "confluent-consumer": lambda args: confluent_member(args, consumer_protocol=True),
    "confluent": confluent_member,
    "kafka-python": kafka_python_member,
    "aiokafka": aiokafka_member,
}


def admin(args):
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": args.bootstrap})
    try:
        if args.cmd == "list":
            r = a.list_consumer_groups(request_timeout=30).result(timeout=30)
            result = {"groups": sorted(
                [{"group": g.group_id, "state": str(g.state.name)} for g in r.valid],
                key=lambda g: g["group"]),
                "errors": [str(e) for e in r.errors]}
        elif args.cmd == "describe":
            d = a.describe_consumer_groups([args.group], request_timeout=30)[args.group]
            d = d.result(timeout=30)
            offsets = a.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(args.group)])[args.group].result(timeout=30)
            result = {
                "group": d.group_id,
                "state": str(d.state.name),
                "assignor": d.partition_assignor,
                "coordinator": d.coordinator.id,
                "members": sorted(
                    [{"client_id": m.client_id, "host": m.host,
                      "instance_id": m.group_instance_id,
                      "partitions": sorted(tp.partition for tp in m.assignment.topic_partitions)}
                     for m in d.members], key=lambda m: m["partitions"]),
                "offsets": {str(tp.partition): tp.offset for tp in offsets.topic_partitions},
            }
        elif args.cmd == "delete":
            a.delete_consumer_groups([args.group], request_timeout=30)[args.group].result(timeout=30)
            result = {"deleted": args.group}
    except KafkaException as e:
        err = e.args[0]
        print(json.dumps({"error": err.name(), "message": err.str()}))
        return 1
    print(json.dumps(result))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=sorted(MEMBERS) + ["admin"])
    ap.add_argument("cmd", choices=["member", "list", "describe", "delete"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic")
    ap.add_argument("--group")
    ap.add_argument("--instance-id")
    args = ap.parse_args()
    if args.lib == "admin":
        sys.exit(admin(args))
    signal.signal(signal.SIGTERM, on_term)
    rc = MEMBERS[args.lib](args)
    if asyncio.iscoroutine(rc):
        rc = asyncio.run(rc)
    sys.exit(rc)


if __name__ == "__main__":
    main()
