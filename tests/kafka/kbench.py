#!/usr/bin/env python3
"""librdkafka's producer (confluent-kafka) as a load generator against a Kafka
API, for cluster/bench-kafka: fixed-size records, acks=all, for SECONDS; prints
progress each second to stderr and one JSON line of the result to stdout.

  kbench.py --bootstrap B --topic T [--seconds 10] [--record-size 1024]
            [--linger-ms 5] [--batch-bytes 1048576]
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import KafkaException, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--batch-bytes", type=int, default=1 << 20)
    args = ap.parse_args()

    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_bytes,
        "queue.buffering.max.kbytes": 256 * 1024,
        "compression.type": "none",
        "partitioner": "murmur2_random",
    })
    payload = os.urandom(args.record_size)
    stats = {"acked": 0, "failed": 0}
    latencies = []

    def done(err, msg):
        if err is None:
            stats["acked"] += 1
            lat = msg.latency()
            if lat is not None and stats["acked"] % 16 == 0:
                latencies.append(lat)
        else:
            stats["failed"] += 1

    start = time.time()
    end = start + args.seconds
    next_report = start + 1
    sent = 0
    while time.time() < end:
        for _ in range(1000):
            try:
                p.produce(args.topic, payload, on_delivery=done)
                sent += 1
            except BufferError:
                p.poll(0.01)
                break
        p.poll(0)
        now = time.time()
        if now >= next_report:
            print(f"{now - start:5.1f} s: {stats['acked']} acknowledged", file=sys.stderr, flush=True)
            next_report += 1
    left = p.flush(60)
    elapsed = time.time() - start
    latencies.sort()

    def pct(q):
        return round(latencies[int(q * (len(latencies) - 1))] * 1000, 1) if latencies else None

    print(json.dumps({
        "records": stats["acked"],
        "failed": stats["failed"] + left,
        "seconds": round(elapsed, 2),
        "records_per_s": round(stats["acked"] / elapsed),
        "mb_per_s": round(stats["acked"] * args.record_size / elapsed / 1e6, 2),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }))
    return 0 if stats["failed"] + left == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(1)
