#!/usr/bin/env python3
"""confluent-kafka's AdminClient against Cairn's Kafka API, for the cluster
tests (tests/it/kafka.rs). Prints one JSON document; on an error prints
{"error": "<Kafka error name>", "message": ...} and exits 1.

  kadmin.py --bootstrap B create TOPIC --partitions N --rf R [--config k=v ...] [--validate-only]
  kadmin.py --bootstrap B delete TOPIC
  kadmin.py --bootstrap B topics
  kadmin.py --bootstrap B describe-configs TOPIC
  kadmin.py --bootstrap B alter-configs TOPIC [--set k=v ...] [--delete k ...] [--append k=v ...] [--subtract k=v ...]
  kadmin.py --bootstrap B alter-broker-configs BROKER [--set k=v ...] [--delete k ...]
      (BROKER "": the cluster-wide set, replaced by the --set pairs)
  kadmin.py --bootstrap B create-partitions TOPIC --partitions N [--validate-only] [--assign 1,2;2,3]
  kadmin.py --bootstrap B cluster
  kadmin.py --bootstrap B delete-records TOPIC PARTITION OFFSET
  kadmin.py --bootstrap B list-offsets TOPIC PARTITION earliest|latest|<timestamp ms>
"""

import argparse
import json
import sys

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, OffsetSpec)

TIMEOUT = 30


def wait(futures):
    """The results of a dict of futures; raises the first Kafka error."""
    return {k: f.result(timeout=TIMEOUT) for k, f in futures.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("topic")
    c.add_argument("--partitions", type=int, default=1)
    c.add_argument("--rf", type=int, default=1)
    c.add_argument("--config", action="append", default=[])
    c.add_argument("--validate-only", action="store_true")
    c.add_argument("--assign", default=None,
                   help="replicas per partition: 1,2;2,3 (instead of --partitions/--rf)")
    sub.add_parser("delete").add_argument("topic")
    tp = sub.add_parser("topics")
    tp.add_argument("--topic", default=None, help="ask for this topic only")
    sub.add_parser("describe-configs").add_argument("topic")
    sub.add_parser("describe-broker-configs").add_argument("broker")
    ab = sub.add_parser("alter-broker-configs")
    ab.add_argument("broker")
    ab.add_argument("--set", action="append", default=[])
    ab.add_argument("--delete", action="append", default=[])
    a = sub.add_parser("alter-configs")
    a.add_argument("topic")
    a.add_argument("--set", action="append", default=[])
    a.add_argument("--delete", action="append", default=[])
    a.add_argument("--append", action="append", default=[])
    a.add_argument("--subtract", action="append", default=[])
    p = sub.add_parser("create-partitions")
    p.add_argument("topic")
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--validate-only", action="store_true")
    p.add_argument("--assign", help="replicas of each new partition: 1,2;2,3")
    sub.add_parser("cluster")
    d = sub.add_parser("delete-records")
    d.add_argument("topic")
    d.add_argument("partition", type=int)
    d.add_argument("offset", type=int)
    lo = sub.add_parser("list-offsets")
    lo.add_argument("topic")
    lo.add_argument("partition", type=int)
    lo.add_argument("spec")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    try:
        if args.cmd == "create":
            configs = dict(kv.split("=", 1) for kv in args.config)
            if args.assign:
                assignment = [[int(n) for n in r.split(",")] for r in args.assign.split(";")]
                t = NewTopic(args.topic, num_partitions=len(assignment), config=configs,
                             replica_assignment=assignment)
            else:
                t = NewTopic(args.topic, num_partitions=args.partitions,
                             replication_factor=args.rf, config=configs)
            wait(admin.create_topics([t], operation_timeout=TIMEOUT,
                                     validate_only=args.validate_only))
            result = {"created": args.topic}
        elif args.cmd == "delete":
            wait(admin.delete_topics([args.topic], operation_timeout=TIMEOUT))
            result = {"deleted": args.topic}
        elif args.cmd == "topics":
            md = admin.list_topics(topic=args.topic, timeout=TIMEOUT)
            result = {
                name: {
                    "partitions": {
                        str(pid): {"leader": p.leader, "replicas": p.replicas, "isrs": p.isrs}
                        for pid, p in t.partitions.items()
                    },
                    "error": str(t.error) if t.error else None,
                }
                for name, t in md.topics.items()
            }
        elif args.cmd == "describe-configs":
            r = ConfigResource(ConfigResource.Type.TOPIC, args.topic)
            configs = wait(admin.describe_configs([r]))[r]
            result = {k: {"value": v.value, "default": v.is_default,
                          "source": str(v.source), "read_only": v.is_read_only,
                          "synonyms": list(v.synonyms.keys())}
                      for k, v in configs.items()}
        elif args.cmd == "describe-broker-configs":
            r = ConfigResource(ConfigResource.Type.BROKER, args.broker)
            configs = wait(admin.describe_configs([r]))[r]
            result = {k: {"value": v.value, "read_only": v.is_read_only, "source": str(v.source)}
                      for k, v in configs.items()}
        elif args.cmd == "alter-broker-configs" and args.broker == "":
            # librdkafka refuses the empty (cluster-wide) name; kafka-python
            # sends it, with AlterConfigs: the --set pairs replace the whole
            # cluster-wide set (--delete is then implied).
            from kafka.admin import KafkaAdminClient, ConfigResource as KPResource, ConfigResourceType
            from kafka.errors import for_code
            kp = KafkaAdminClient(bootstrap_servers=args.bootstrap.split(","))
            configs = dict(kv.split("=", 1) for kv in args.set)
            response = kp.alter_configs([KPResource(ConfigResourceType.BROKER, "", configs=configs)])
            kp.close()
            code = response.resources[0][0]
            if code:
                print(json.dumps({"error": for_code(code).message, "message": response.resources[0][1]}))
                sys.exit(1)
            result = {"altered": ""}
        elif args.cmd == "alter-broker-configs":
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                       for k, v in (kv.split("=", 1) for kv in args.set)]
            entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                        for k in args.delete]
            r = ConfigResource(ConfigResource.Type.BROKER, args.broker, incremental_configs=entries)
            wait(admin.incremental_alter_configs([r]))
            result = {"altered": args.broker}
        elif args.cmd == "alter-configs":
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                       for k, v in (kv.split("=", 1) for kv in args.set)]
            entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                        for k in args.delete]
            entries += [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.APPEND)
                        for k, v in (kv.split("=", 1) for kv in args.append)]
            entries += [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SUBTRACT)
                        for k, v in (kv.split("=", 1) for kv in args.subtract)]
            r = ConfigResource(ConfigResource.Type.TOPIC, args.topic, incremental_configs=entries)
            wait(admin.incremental_alter_configs([r]))
            result = {"altered": args.topic}
        elif args.cmd == "create-partitions":
            new = NewPartitions(args.topic, args.partitions)
            if args.assign:
                new = NewPartitions(args.topic, args.partitions, replica_assignment=[
                    [int(n) for n in r.split(",")] for r in args.assign.split(";")])
            wait(admin.create_partitions([new],
                                         operation_timeout=TIMEOUT,
                                         validate_only=args.validate_only))
            result = {"partitions": args.partitions}
        elif args.cmd == "cluster":
            md = admin.list_topics(timeout=TIMEOUT)
            result = {
                "cluster_id": md.cluster_id,
                "controller_id": md.controller_id,
                "brokers": sorted(b.id for b in md.brokers.values()),
            }
        elif args.cmd == "delete-records":
            tp = TopicPartition(args.topic, args.partition, args.offset)
            deleted = wait(admin.delete_records([tp], operation_timeout=TIMEOUT))[tp]
            result = {"low_watermark": deleted.low_watermark}
        elif args.cmd == "list-offsets":
            spec = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest()}.get(args.spec)
            if spec is None:
                spec = OffsetSpec.for_timestamp(int(args.spec))
            tp = TopicPartition(args.topic, args.partition)
            info = wait(admin.list_offsets({tp: spec}))[tp]
            result = {"offset": info.offset, "leader_epoch": info.leader_epoch,
                      "timestamp": info.timestamp}
    except KafkaException as e:
        err = e.args[0]
        print(json.dumps({"error": err.name(), "message": err.str()}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
