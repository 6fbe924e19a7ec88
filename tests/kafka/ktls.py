#!/usr/bin/env python3
"""Real Kafka clients against a TLS Kafka listener, for tests/it/tls.rs.
Prints one JSON document: each step's outcome ("ok", a Kafka error name,
"refused", or a count).

  ktls.py sasl_ssl --bootstrap B --ca CA --admin-password P
      (listener SASL_SSL; user admin exists and is a super-user)
  ktls.py mtls --bootstrap B --ca CA --dir D
      (listener SSL with client certificates required; D holds admin.crt/.key,
       alice.crt/.key, and stranger.crt/.key from another CA; the principal of
       a certificate is its CN; alice may write and read topics "lab.*" and
       read groups "lab")
"""

import argparse
import json
import os

from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

TIMEOUT = 20


def produce(conf, topic, n, tag="v"):
    """Produces n records; answers "ok" or the first error's name."""
    errors = []
    p = Producer(dict(conf, **{"message.timeout.ms": 10000, "retries": 0}))
    for i in range(n):
        p.produce(topic, value=f"{tag}{i}".encode(), key=f"k{i}".encode(),
                  on_delivery=lambda err, _m: err and errors.append(err))
    left = p.flush(TIMEOUT)
    if errors:
        return errors[0].name()
    return "ok" if left == 0 else "timeout"


def consume(conf, topic, group, n):
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([topic])
    got = 0
    error = None
    for _ in range(300):
        m = c.poll(0.2)
        if m is None:
            if got >= n:
                break
            continue
        if m.error():
            error = m.error().name()
            break
        got += 1
        if got >= n:
            break
    if error is None and got:
        c.commit(asynchronous=False)
    c.close()
    return error or got


def reachable(conf):
    """Lists topics: "ok", or "refused" when no answer comes."""
    p = Producer(dict(conf, **{"socket.timeout.ms": 3000,
                               "error_cb": lambda _err: None}))
    try:
        p.list_topics(timeout=6)
        return "ok"
    except KafkaException:
        return "refused"


def kp_produce_consume(kw, topic, group, n):
    """kafka-python: produces n records and reads the topic back."""
    p = KafkaProducer(**kw, acks="all", request_timeout_ms=TIMEOUT * 1000)
    for i in range(n):
        p.send(topic, key=f"kp{i}".encode(), value=f"kp{i}".encode())
    p.flush(TIMEOUT)
    p.close()
    c = KafkaConsumer(topic, **kw, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=8000)
    got = sum(1 for _ in c)
    c.close()
    return got


def sasl_ssl(a):
    out = {}
    b = a.bootstrap
    conf = {"bootstrap.servers": b, "security.protocol": "SASL_SSL",
            "ssl.ca.location": a.ca, "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "admin", "sasl.password": a.admin_password}
    out["confluent_produce"] = produce(conf, "tls-topic", 10)
    out["confluent_consume"] = consume(conf, "tls-topic", "tls-g1", 10)
    kw = dict(bootstrap_servers=b, security_protocol="SASL_SSL", ssl_cafile=a.ca,
              sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
              sasl_plain_password=a.admin_password)
    out["kafka_python_consume"] = kp_produce_consume(kw, "tls-topic", "tls-g2", 5)
    out["wrong_password"] = reachable(dict(conf, **{"sasl.password": "nope"}))
    # A client that speaks plaintext to the TLS listener gets nothing.
    out["plaintext_client"] = reachable({"bootstrap.servers": b})
    # A client that does not trust the node's CA refuses the node.
    other = os.path.join(os.path.dirname(a.ca), "other", "ca.crt")
    out["untrusted_ca"] = reachable(dict(conf, **{"ssl.ca.location": other}))
    return out


def mtls(a):
    out = {}
    b = a.bootstrap
    d = a.dir

    def ssl_conf(name):
        return {"bootstrap.servers": b, "security.protocol": "SSL",
                "ssl.ca.location": a.ca,
                "ssl.certificate.location": os.path.join(d, f"{name}.crt"),
                "ssl.key.location": os.path.join(d, f"{name}.key")}

    admin = KafkaAdminClient(bootstrap_servers=b, security_protocol="SSL", ssl_cafile=a.ca,
                             ssl_certfile=os.path.join(d, "admin.crt"),
                             ssl_keyfile=os.path.join(d, "admin.key"),
                             request_timeout_ms=TIMEOUT * 1000)
    admin.create_topics([NewTopic("lab.results", 1, 1), NewTopic("billing", 1, 1)])
    admin.close()
    out["admin_create_topics"] = "ok"
    alice = ssl_conf("alice")
    out["alice_produce"] = produce(alice, "lab.results", 10)
    out["alice_consume"] = consume(alice, "lab.results", "lab", 10)
    out["alice_produce_billing"] = produce(alice, "billing", 1)
    kw = dict(bootstrap_servers=b, security_protocol="SSL", ssl_cafile=a.ca,
              ssl_certfile=os.path.join(d, "alice.crt"),
              ssl_keyfile=os.path.join(d, "alice.key"))
    out["kafka_python_alice"] = kp_produce_consume(kw, "lab.results", "lab", 5)
    no_cert = {"bootstrap.servers": b, "security.protocol": "SSL", "ssl.ca.location": a.ca}
    out["no_certificate"] = reachable(no_cert)
    out["stranger_certificate"] = reachable(ssl_conf("stranger"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["sasl_ssl", "mtls"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--admin-password")
    ap.add_argument("--dir")
    a = ap.parse_args()
    out = sasl_ssl(a) if a.mode == "sasl_ssl" else mtls(a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
