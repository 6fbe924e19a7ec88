// The Java client (Kafka's reference implementation) in a consumer group of
// the consumer group protocol (KIP-848, group.protocol=consumer), against
// Cairn (tests/it/kafka_groups.rs). Compiled and run by the test:
//
//   javac -cp 'JARS/*' -d OUT JavaGroups.java
//   java -cp 'OUT:JARS/*' JavaGroups --bootstrap B --topic T --group G
//        --records N --assignor uniform|range
//
// 1. Produces N keyed records to TOPIC.
// 2. Consumer a joins GROUP: it must get every partition.
// 3. Consumer b joins: the two are polled in turn until the partitions are
//    split between them; after every poll their assignments must not
//    overlap (a partition is never owned by two members).
// 4. Both read until all N records were seen and commit (OffsetCommit v9,
//    fenced by member epoch); a member commits what it read of partitions
//    it gives up before it gives them up, so no record is read twice.
// 5. The admin client describes the group (ConsumerGroupDescribe), lists it
//    (ListGroups with its type) and reads its committed offsets.
// 6. b closes (leaves); a must get every partition back. Then a closes and
//    the group is described again.
//
// Prints one JSON line; "error" is set when a step failed.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaGroups {
    static final StringBuilder out = new StringBuilder();

    static void field(String name, String jsonValue) {
        out.append(out.length() == 0 ? "{" : ",");
        out.append(str(name)).append(":").append(jsonValue);
    }

    public static void main(String[] argv) throws Exception {
        String bootstrap = null, topic = null, group = null, assignor = "uniform";
        int records = 200;
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--bootstrap": bootstrap = argv[++i]; break;
                case "--topic": topic = argv[++i]; break;
                case "--group": group = argv[++i]; break;
                case "--records": records = Integer.parseInt(argv[++i]); break;
                case "--assignor": assignor = argv[++i]; break;
                default:
                    System.err.println("unknown argument " + argv[i]);
                    System.exit(2);
            }
        }
        field("client", str("java"));
        try {
            run(bootstrap, topic, group, records, assignor);
        } catch (Throwable e) {
            field("error", str(e.getClass().getName() + ": " + e.getMessage()));
            e.printStackTrace();
        }
        System.out.println(out.append("}"));
        System.out.flush();
        System.exit(0);
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String id,
                                                  String assignor) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, id);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    static void run(String bootstrap, String topic, String group, int records, String assignor)
            throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        int partitions;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < records; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)).get();
            }
            partitions = producer.partitionsFor(topic).size();
        }
        field("partitions", Integer.toString(partitions));

        Set<String> seen = new HashSet<>();
        int duplicates = 0;
        KafkaConsumer<String, String> a = consumer(bootstrap, group, "a", assignor);
        KafkaConsumer<String, String> b = null;
        try {
            a.subscribe(List.of(topic), commitOnRevoke(a));
            long start = System.nanoTime();
            while (a.assignment().size() < partitions) {
                duplicates += take(a.poll(Duration.ofMillis(100)), seen);
                check(start, 30, "a did not get every partition");
            }
            field("a_alone_s", secs(start));

            b = consumer(bootstrap, group, "b", assignor);
            b.subscribe(List.of(topic), commitOnRevoke(b));
            start = System.nanoTime();
            boolean overlap = false;
            while (true) {
                duplicates += take(a.poll(Duration.ofMillis(50)), seen);
                overlap |= overlaps(a.assignment(), b.assignment());
                duplicates += take(b.poll(Duration.ofMillis(50)), seen);
                overlap |= overlaps(a.assignment(), b.assignment());
                Set<TopicPartition> union = new HashSet<>(a.assignment());
                union.addAll(b.assignment());
                if (!a.assignment().isEmpty() && !b.assignment().isEmpty()
                        && union.size() == partitions
                        && a.assignment().size() + b.assignment().size() == partitions) {
                    break;
                }
                check(start, 60, "the partitions were not split between a and b");
            }
            field("split_s", secs(start));
            field("a", parts(a.assignment()));
            field("b", parts(b.assignment()));
            field("overlap", Boolean.toString(overlap));

            start = System.nanoTime();
            while (seen.size() < records) {
                duplicates += take(a.poll(Duration.ofMillis(50)), seen);
                duplicates += take(b.poll(Duration.ofMillis(50)), seen);
                check(start, 60, "not every record was read: " + seen.size());
            }
            a.commitSync();
            b.commitSync();
            field("consumed", Integer.toString(seen.size()));
            field("duplicates", Integer.toString(duplicates));

            try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
                    bootstrap))) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                    .all().get().get(group);
                field("describe", describe(d));
                String listed = "null";
                Collection<GroupListing> groups = admin.listGroups().all().get();
                for (GroupListing g : groups) {
                    if (g.groupId().equals(group)) {
                        listed = str(g.type().map(Object::toString).orElse("none"));
                    }
                }
                field("listed_type", listed);
                Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                long total = 0;
                for (OffsetAndMetadata o : committed.values()) {
                    total += o.offset();
                }
                field("committed_total", Long.toString(total));

                b.close();
                b = null;
                start = System.nanoTime();
                while (a.assignment().size() < partitions) {
                    a.poll(Duration.ofMillis(100));
                    check(start, 30, "a did not get b's partitions back");
                }
                field("after_leave_s", secs(start));
                field("after_leave", Integer.toString(a.assignment().size()));
                a.close();
                a = null;
                d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
                field("after_close", describe(d));
            }
        } finally {
            if (a != null) {
                a.close();
            }
            if (b != null) {
                b.close();
            }
        }
    }

    /** Commits what was read of partitions before they go to another member. */
    static ConsumerRebalanceListener commitOnRevoke(KafkaConsumer<String, String> c) {
        return new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                c.commitSync();
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            }
        };
    }

    static String describe(ConsumerGroupDescription d) {
        List<String> members = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            members.add("{\"client_id\":" + str(m.clientId()) + ",\"partitions\":"
                + m.assignment().topicPartitions().size() + "}");
        }
        return "{\"type\":" + str(String.valueOf(d.type())) + ",\"state\":"
            + str(String.valueOf(d.groupState())) + ",\"assignor\":" + str(d.partitionAssignor())
            + ",\"members\":[" + String.join(",", members) + "]}";
    }

    static int take(Iterable<ConsumerRecord<String, String>> polled, Set<String> seen) {
        int dup = 0;
        for (ConsumerRecord<String, String> r : polled) {
            if (!seen.add(r.partition() + "/" + r.offset())) {
                dup++;
            }
        }
        return dup;
    }

    static boolean overlaps(Set<TopicPartition> x, Set<TopicPartition> y) {
        for (TopicPartition tp : x) {
            if (y.contains(tp)) {
                return true;
            }
        }
        return false;
    }

    static String parts(Set<TopicPartition> s) {
        TreeSet<Integer> p = new TreeSet<>();
        for (TopicPartition tp : s) {
            p.add(tp.partition());
        }
        return p.toString();
    }

    static void check(long start, int seconds, String what) {
        if (System.nanoTime() - start > seconds * 1_000_000_000L) {
            throw new IllegalStateException(what + " within " + seconds + " s");
        }
    }

    static String secs(long start) {
        return String.format(Locale.ROOT, "%.3f", (System.nanoTime() - start) / 1e9);
    }

    static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                default: b.append(c);
            }
        }
        return b.append("\"").toString();
    }
}
