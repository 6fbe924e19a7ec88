#!/usr/bin/env python3
"""An idempotent librdkafka producer (confluent-kafka) for the failover test
in tests/it/kafka.rs: produces COUNT records with the unique values "0" ..
"COUNT-1", in that order, to one partition, acks=all and
enable.idempotence=true, at about RATE records/s so a leader kill falls in
the middle of the stream.

  idem_produce.py --bootstrap B --topic T --partition P --count N --rate R --reports FILE

stdout: "acked K" each time another 250 records were acknowledged (the test
waits on these to kill and restart nodes), then "done acked=A failed=F".
FILE: one JSON line per delivery report, {"value", "offset"} or {"value",
"error"}, in the order the reports arrived. librdkafka's errors (a fatal
one included) go to stderr as "error: ...".
"""

import argparse
import json
import sys
import time

from confluent_kafka import Producer

PROGRESS_EVERY = 250


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--reports", required=True)
    args = ap.parse_args()

    def on_error(err):
        print(f"error: {err.name()} fatal={err.fatal()} {err.str()}", file=sys.stderr, flush=True)

    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # Long enough to ride out a failover; a record still undelivered
        # then is reported as an error (and fails the test).
        "message.timeout.ms": 120000,
        "error_cb": on_error,
    })
    reports = open(args.reports, "w")
    acked = 0
    failed = 0

    def done(err, msg):
        nonlocal acked, failed
        value = int(msg.value())
        if err is not None:
            failed += 1
            reports.write(json.dumps({"value": value, "error": str(err)}) + "\n")
            return
        reports.write(json.dumps({"value": value, "offset": msg.offset()}) + "\n")
        acked += 1
        if acked % PROGRESS_EVERY == 0:
            print(f"acked {acked}", flush=True)

    start = time.monotonic()
    for i in range(args.count):
        # Pace the stream: record i goes out no earlier than i / rate.
        while time.monotonic() - start < i / args.rate:
            p.poll(0.001)
        while True:
            try:
                p.produce(args.topic, value=str(i).encode(), partition=args.partition,
                          on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(180)
    reports.close()
    print(f"done acked={acked} failed={failed} left={left}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
