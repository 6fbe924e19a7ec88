#!/usr/bin/env python3
"""Drives a real Kafka client library against Cairn's Kafka API for the
cluster tests (tests/it/kafka.rs). Nothing here speaks the protocol itself.

  kclient.py LIB produce --bootstrap B --topic T --count N [--codec C] [--prefix P]
                         [--value-bytes V] [--spread K] [--config KEY=VALUE ...]
  kclient.py LIB consume --bootstrap B --topic T --partitions 0,1 --expect N [--timeout S]
                         [--config KEY=VALUE ...]

LIB is confluent (librdkafka), kafka-python or aiokafka. produce prints one
JSON line per acknowledged record ({"partition", "offset", "key", "value"})
and exits 1 if any record was not acknowledged; keys are "k<i>", values
"<prefix>-<i>". consume assigns the partitions (no consumer group), reads from
the beginning and prints one JSON line per record until it has `expect`
records (exit 0) or the timeout passes (exit 1).

Large records (confluent only): --value-bytes pads each value with "." to V
bytes; the JSON lines then carry the value without its padding and its full
length as "bytes" (payloads are not printed). --keyless sends records without
a key. --spread K sends record i to
partition i % K instead of the key's. --config passes settings to the
librdkafka producer or consumer (e.g. fetch.max.bytes=1000000).
"""

import argparse
import asyncio
import json
import sys
import time


PAD = b"."


def out(partition, offset, key, value):
    line = {
        "partition": partition,
        "offset": offset,
        "key": key.decode() if key is not None else None,
        "value": value.decode() if value is not None else None,
    }
    if value is not None and value.endswith(PAD):
        line["value"] = value.rstrip(PAD).decode()
        line["bytes"] = len(value)
    print(json.dumps(line), flush=True)


def records(args):
    for i in range(args.count):
        value = f"{args.prefix}-{i}".encode()
        if args.value_bytes:
            value = value.ljust(args.value_bytes, PAD)
        yield (None if args.keyless else f"k{i}".encode()), value


def settings(args):
    """The --config KEY=VALUE pairs."""
    return dict(kv.split("=", 1) for kv in args.config)


# --- confluent-kafka (librdkafka) -------------------------------------------

def confluent_produce(args):
    from confluent_kafka import Producer
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "compression.type": args.codec,
        # The Java client's partitioner: murmur2 of the key.
        "partitioner": "murmur2_random",
        "acks": "all",
        "enable.idempotence": args.idempotent,
        "linger.ms": 5,
        **settings(args),
    })
    failed = []

    def done(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            out(msg.partition(), msg.offset(), msg.key(), msg.value())

    for i, (key, value) in enumerate(records(args)):
        where = {"partition": i % args.spread} if args.spread else {}
        while True:
            try:
                p.produce(args.topic, value=value, key=key, on_delivery=done, **where)
                break
            except BufferError:
                # The local queue is full (large records): wait for deliveries.
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    if failed or left:
        print(f"not acknowledged: {len(failed)} failed {failed[:3]}, {left} left", file=sys.stderr)
        return 1
    return 0


def confluent_consume(args):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "cairn-test-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        **settings(args),
    })
    c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in args.partitions])
    got = 0
    deadline = time.time() + args.timeout
    while got < args.expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            print(f"consumer error: {m.error()}", file=sys.stderr)
            continue
        out(m.partition(), m.offset(), m.key(), m.value())
        got += 1
    c.close()
    return 0 if got >= args.expect else 1


# --- kafka-python ----------------------------------------------------------

def kafka_python_produce(args):
    from kafka import KafkaProducer
    p = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        compression_type=None if args.codec == "none" else args.codec,
        acks="all",
        linger_ms=5,
    )
    futures = [(p.send(args.topic, key=k, value=v), k, v) for k, v in records(args)]
    p.flush(60)
    failed = 0
    for f, k, v in futures:
        try:
            md = f.get(timeout=60)
            out(md.partition, md.offset, k, v)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"not acknowledged: {e!r}", file=sys.stderr)
    p.close()
    return 1 if failed else 0


def kafka_python_consume(args):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(
        bootstrap_servers=args.bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tps = [TopicPartition(args.topic, p) for p in args.partitions]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = 0
    deadline = time.time() + args.timeout
    while got < args.expect and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                out(m.partition, m.offset, m.key, m.value)
                got += 1
    c.close()
    return 0 if got >= args.expect else 1


# --- aiokafka ----------------------------------------------------------------

async def aiokafka_produce(args):
    from aiokafka import AIOKafkaProducer
    p = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        compression_type=None if args.codec == "none" else args.codec,
        acks="all",
        linger_ms=5,
    )
    await p.start()
    failed = 0
    try:
        sent = [(await p.send(args.topic, key=k, value=v), k, v) for k, v in records(args)]
        for fut, k, v in sent:
            try:
                md = await asyncio.wait_for(fut, 60)
                out(md.partition, md.offset, k, v)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"not acknowledged: {e!r}", file=sys.stderr)
    finally:
        await p.stop()
    return 1 if failed else 0


async def aiokafka_consume(args):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    c = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await c.start()
    got = 0
    try:
        tps = [TopicPartition(args.topic, p) for p in args.partitions]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.time() + args.timeout
        while got < args.expect and time.time() < deadline:
            batches = await c.getmany(timeout_ms=500)
            for tp, msgs in batches.items():
                for m in msgs:
                    out(m.partition, m.offset, m.key, m.value)
                    got += 1
    finally:
        await c.stop()
    return 0 if got >= args.expect else 1


CLIENTS = {
    "confluent": (confluent_produce, confluent_consume),
    "kafka-python": (kafka_python_produce, kafka_python_consume),
    "aiokafka": (aiokafka_produce, aiokafka_consume),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=sorted(CLIENTS))
    ap.add_argument("action", choices=["produce", "consume"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--codec", default="none")
    ap.add_argument("--prefix", default="v")
    ap.add_argument("--idempotent", action="store_true")
    ap.add_argument("--partitions", type=lambda s: [int(p) for p in s.split(",")], default=[0])
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--value-bytes", type=int, default=0)
    ap.add_argument("--spread", type=int, default=0)
    ap.add_argument("--keyless", action="store_true",
                    help="records without a key (a compacted topic refuses them)")
    ap.add_argument("--config", action="append", default=[])
    args = ap.parse_args()
    if args.lib != "confluent" and (args.value_bytes or args.spread or args.config):
        ap.error("--value-bytes, --spread and --config are for confluent only")
    produce, consume = CLIENTS[args.lib]
    fn = produce if args.action == "produce" else consume
    rc = fn(args)
    if asyncio.iscoroutine(rc):
        rc = asyncio.run(rc)
    sys.exit(rc)


if __name__ == "__main__":
    main()
