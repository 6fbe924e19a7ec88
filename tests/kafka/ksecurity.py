#!/usr/bin/env python3
"""Real Kafka clients against a SASL_PLAINTEXT listener with ACLs on, for
tests/it/kafka_security.rs. The users `admin` (a super-user) and `alice`
exist before it runs. It plays one scripted scenario and prints one JSON
document: each step's outcome ("ok", a Kafka error name, or a count).

  ksecurity.py --bootstrap B --admin-password P --alice-password Q
"""

import argparse
import asyncio
import json
import subprocess
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, KafkaAdminClient, NewTopic,
                         ResourcePattern, ResourcePatternFilter, ResourceType)

TIMEOUT = 20


def sasl(bootstrap, mechanism, user, password):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def produce(conf, topic, n):
    """Produces n records; answers "ok" or the first error's name."""
    errors = []
    p = Producer(dict(conf, **{"message.timeout.ms": 10000, "retries": 0}))
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(),
                  on_delivery=lambda err, _m: err and errors.append(err))
    p.flush(TIMEOUT)
    if errors:
        return errors[0].name()
    return "ok"


def consume(conf, topic, group, n):
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([topic])
    got = 0
    error = None
    for _ in range(200):
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


def metadata_outcome(conf):
    """Lists topics: "ok"; "_AUTHENTICATION" when the client reported an
    authentication failure; else "refused" (no answer at all)."""
    errors = []
    conf = dict(conf, **{"socket.timeout.ms": 3000,
                         "error_cb": lambda err: errors.append(err.name())})
    p = Producer(conf)
    try:
        p.list_topics(timeout=6)
        return "ok"
    except KafkaException:
        p.poll(1)  # serves the error callbacks
        return "_AUTHENTICATION" if "_AUTHENTICATION" in errors else "refused"


def kafka_python_admin(bootstrap, password):
    return KafkaAdminClient(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
                            sasl_plain_password=password, request_timeout_ms=TIMEOUT * 1000)


async def aiokafka_plain(bootstrap, password):
    from aiokafka import AIOKafkaProducer
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_plain_username="alice",
                         sasl_plain_password=password)
    await p.start()
    try:
        await p.send_and_wait("secure", b"from-aiokafka", key=b"aio")
    finally:
        await p.stop()
    return "ok"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--admin-password", required=True)
    ap.add_argument("--alice-password", required=True)
    a = ap.parse_args()
    b = a.bootstrap
    out = {}
    admin = kafka_python_admin(b, a.admin_password)
    # "secure" holds patient data: every access to it is audited.
    admin.create_topics([NewTopic("secure", 1, 1, topic_configs={"cairn.sensitive": "true"}),
                         NewTopic("other", 1, 1)])
    out["admin_create_topics"] = "ok"
    acls = [
        ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType.TOPIC, "secure")),
        ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType.TOPIC, "secure")),
        ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType.GROUP, "g", ACLResourcePatternType.PREFIXED)),
    ]
    created = admin.create_acls(acls)
    out["admin_create_acls"] = len(created["succeeded"]) if not created["failed"] else \
        str(created["failed"])
    alice_filter = ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                             ResourcePatternFilter(ResourceType.ANY, None,
                                                   ACLResourcePatternType.ANY))
    described, error = admin.describe_acls(alice_filter)
    out["admin_describe_acls"] = len(described) if error.errno == 0 else error.__name__

    alice256 = sasl(b, "SCRAM-SHA-256", "alice", a.alice_password)
    out["alice_produce_scram256"] = produce(alice256, "secure", 10)
    out["alice_consume_scram256"] = consume(alice256, "secure", "g1", 10)
    out["alice_produce_unauthorized_topic"] = produce(alice256, "other", 1)
    out["alice_consume_unauthorized_group"] = consume(alice256, "secure", "h1", 1)
    out["wrong_password"] = metadata_outcome(sasl(b, "SCRAM-SHA-512", "alice", "wrong"))
    out["unknown_user"] = metadata_outcome(sasl(b, "SCRAM-SHA-256", "mallory", "x"))
    out["no_credentials"] = metadata_outcome({"bootstrap.servers": b})
    out["aiokafka_plain"] = asyncio.run(aiokafka_plain(b, a.alice_password))
    kcat = subprocess.run(
        ["kcat", "-b", b, "-X", "security.protocol=SASL_PLAINTEXT",
         "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
         "-X", f"sasl.password={a.alice_password}", "-C", "-t", "secure", "-o", "beginning",
         "-e", "-q"], capture_output=True, text=True, timeout=60)
    out["kcat_consume"] = len(kcat.stdout.splitlines()) if kcat.returncode == 0 else \
        f"exit {kcat.returncode}: {kcat.stderr.strip()[-200:]}"

    # Users through the Kafka API (confluent-kafka's AdminClient): carol
    # is created with SCRAM-SHA-512, described, and logs in.
    cadmin = AdminClient(sasl(b, "SCRAM-SHA-512", "admin", a.admin_password))
    up = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"carol-pw")
    for f in cadmin.alter_user_scram_credentials([up]).values():
        f.result(timeout=TIMEOUT)
    desc = cadmin.describe_user_scram_credentials(["carol"])["carol"].result(timeout=TIMEOUT)
    out["carol_described"] = [
        [str(i.mechanism).split(".")[-1], i.iterations] for i in desc.scram_credential_infos
    ]
    out["carol_login"] = metadata_outcome(sasl(b, "SCRAM-SHA-512", "carol", "carol-pw"))
    # A non-admin may not manage users or ACLs.
    alice_admin = AdminClient(alice256)
    try:
        for f in alice_admin.alter_user_scram_credentials([up]).values():
            f.result(timeout=TIMEOUT)
        out["alice_alter_users"] = "ok"
    except KafkaException as e:
        out["alice_alter_users"] = e.args[0].name()

    deleted = admin.delete_acls([alice_filter])
    out["admin_delete_acls"] = sum(len(d[1]) for d in deleted)
    out["alice_produce_after_acls_deleted"] = produce(alice256, "secure", 1)
    admin.close()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
