#!/usr/bin/env python3
"""The scripted client actions of tests/it/audit.rs: real Kafka clients
against a SASL_PLAINTEXT listener with ACLs on, whose audit trail the test
then reads back. The users `admin` (a super-user), `alice` and `bob` exist
before it runs. Prints one JSON document: each step's outcome ("ok", a
Kafka error name, or a count).

  kaudit.py --bootstrap B --password P --phase setup|act|grant|read
  (every user's password is P)

The phases run in this order; between them the test waits until every node
has applied the ACLs just made (a node checks its own copy of them).
"""

import argparse
import json
import sys

import kafka.errors as KafkaErrors
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import (ACL, ACLOperation, ACLPermissionType, NewTopic, ResourcePattern,
                         ResourceType)

from ksecurity import TIMEOUT, kafka_python_admin, metadata_outcome, produce, sasl

AUDIT = "__cairn_audit"


def read_audit(bootstrap, user, password):
    """Reads partition 0 of the audit topic from its start with
    kafka-python, without a group (so no group ACL is involved): the number
    of records read, or the error's name."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
                      sasl_plain_password=password, group_id=None,
                      enable_auto_commit=False, request_timeout_ms=TIMEOUT * 1000)
    try:
        tp = KafkaTopicPartition(AUDIT, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = 0
        for _ in range(20):
            got += sum(len(v) for v in c.poll(timeout_ms=500).values())
            if got:
                break
        return got
    except KafkaErrors.KafkaError as e:
        return type(e).__name__
    finally:
        c.close()


def setup(b, pw, out):
    admin = kafka_python_admin(b, pw)
    admin.create_topics([NewTopic("labs", 1, 3, topic_configs={"cairn.sensitive": "true"}),
                         NewTopic("notes", 1, 3)])
    out["admin_create_topics"] = "ok"
    acls = [
        ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW, topic("labs")),
        ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW, topic("notes")),
        # Neither lets alice touch the audit topic's records.
        ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW, topic(AUDIT)),
        ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, topic("*")),
    ]
    created = admin.create_acls(acls)
    out["admin_create_acls"] = len(created["succeeded"]) if not created["failed"] else \
        str(created["failed"])
    admin.close()


def act(b, pw, out):
    alice = sasl(b, "SCRAM-SHA-256", "alice", pw)
    bob = sasl(b, "SCRAM-SHA-256", "bob", pw)
    admin = sasl(b, "SCRAM-SHA-512", "admin", pw)
    out["alice_produce_labs"] = produce(alice, "labs", 1)
    out["alice_produce_notes"] = produce(alice, "notes", 1)
    out["bob_produce_labs"] = produce(bob, "labs", 1)
    out["alice_wrong_password"] = metadata_outcome(sasl(b, "SCRAM-SHA-512", "alice", "wrong"))
    out["alice_produce_audit"] = produce(alice, AUDIT, 1)
    out["admin_produce_audit"] = produce(admin, AUDIT, 1)
    cadmin = AdminClient(admin)
    try:
        cadmin.delete_topics([AUDIT])[AUDIT].result(timeout=TIMEOUT)
        out["admin_delete_audit"] = "ok"
    except KafkaException as e:
        out["admin_delete_audit"] = e.args[0].name()
    out["alice_read_audit_wildcard_acl"] = read_audit(b, "alice", pw)


def grant(b, pw, out):
    admin = kafka_python_admin(b, pw)
    g = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, topic(AUDIT))
    created = admin.create_acls([g])
    out["admin_grant_audit_read"] = len(created["succeeded"])
    admin.close()


def read(b, pw, out):
    got = read_audit(b, "alice", pw)
    out["alice_read_audit"] = "some" if isinstance(got, int) and got > 0 else got


def topic(name):
    return ResourcePattern(ResourceType.TOPIC, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--phase", required=True, choices=["setup", "act", "grant", "read"])
    a = ap.parse_args()
    out = {}
    {"setup": setup, "act": act, "grant": grant, "read": read}[a.phase](
        a.bootstrap, a.password, out)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
