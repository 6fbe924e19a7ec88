#!/usr/bin/env python3
"""Starts a transactional producer with a real Kafka client library against
Cairn, which has no transactions yet, and reports how it failed
(tests/it/kafka.rs, reliability finding 9).

  ktxn.py LIB --bootstrap B [--timeout S]

LIB is confluent (librdkafka), kafka-python or aiokafka. Prints one JSON line
{"lib", "ok", "seconds", "error", "fatal"} and exits 0 when initialising the
transactions failed within the timeout, 1 when it succeeded or hung.
"""

import argparse
import asyncio
import json
import sys
import time


def confluent(args):
    from confluent_kafka import KafkaException, Producer
    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "cairn-txn-test"})
    try:
        p.init_transactions(args.timeout)
        return True, None, None
    except KafkaException as e:
        err = e.args[0]
        return False, f"{err.name()}: {err.str()}", bool(err.fatal())


def kafka_python(args):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    try:
        p = KafkaProducer(
            bootstrap_servers=args.bootstrap.split(","),
            transactional_id="cairn-txn-test",
            max_block_ms=int(args.timeout * 1000),
        )
    except KafkaError as e:
        return False, repr(e), None
    try:
        p.init_transactions()
        return True, None, None
    except KafkaError as e:
        return False, repr(e), None
    finally:
        p.close(timeout=1)


async def aiokafka(args):
    from aiokafka import AIOKafkaProducer
    p = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, transactional_id="cairn-txn-test"
    )
    try:
        await asyncio.wait_for(p.start(), args.timeout)
        return True, None, None
    except asyncio.TimeoutError:
        return True, "timed out", None
    except Exception as e:  # noqa: BLE001 - any refusal is the answer
        return False, repr(e), None
    finally:
        try:
            await asyncio.wait_for(p.stop(), 5)
        except Exception:  # noqa: BLE001
            pass


CLIENTS = {"confluent": confluent, "kafka-python": kafka_python, "aiokafka": aiokafka}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=sorted(CLIENTS))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    start = time.monotonic()
    result = CLIENTS[args.lib](args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    ok, error, fatal = result
    seconds = time.monotonic() - start
    print(json.dumps({"lib": args.lib, "ok": ok, "seconds": round(seconds, 3),
                      "error": error, "fatal": fatal}), flush=True)
    sys.exit(0 if not ok and seconds < args.timeout else 1)


if __name__ == "__main__":
    main()
