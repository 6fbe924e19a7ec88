// The Java Kafka client (Kafka's reference implementation) against Cairn,
// which has no transactions yet (tests/it/kafka_txn.rs, reliability
// finding 9). Compiled and run by the test:
//
//   javac -cp 'JARS/*' -d OUT JavaTxn.java
//   java -cp 'OUT:JARS/*' JavaTxn --bootstrap B --topic T [--timeout-ms MS]
//
// 1. A producer with transactional.id calls initTransactions(); max.block.ms
//    is the timeout, so a retriable answer shows as a wait of about that long.
// 2. A producer with enable.idempotence=true (not transactional) sends one
//    record to partition 0 of TOPIC and waits for its acknowledgement.
//
// Prints one JSON line:
//   {"client": "java", "version": V,
//    "transactional": {"ok", "seconds", "exception", "message",
//                      "causes": [{"exception", "message"}, ...]},
//    "idempotent": {"ok", "seconds", "partition", "offset", "value",
//                   "exception", "message"}}
// "causes" is the exception's cause chain, outermost first (itself
// included). Exits 0 when initTransactions failed within the timeout and the
// idempotent send was acknowledged, 1 otherwise.

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.AppInfoParser;

public class JavaTxn {
    public static void main(String[] argv) {
        String bootstrap = null;
        String topic = null;
        long timeoutMs = 30_000;
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--bootstrap": bootstrap = argv[++i]; break;
                case "--topic": topic = argv[++i]; break;
                case "--timeout-ms": timeoutMs = Long.parseLong(argv[++i]); break;
                default:
                    System.err.println("unknown argument " + argv[i]);
                    System.exit(2);
            }
        }
        if (bootstrap == null || topic == null) {
            System.err.println("usage: JavaTxn --bootstrap B --topic T [--timeout-ms MS]");
            System.exit(2);
        }
        Result txn = transactional(bootstrap, timeoutMs);
        Result idem = idempotent(bootstrap, topic, timeoutMs);
        System.out.println("{\"client\":\"java\",\"version\":" + str(AppInfoParser.getVersion())
            + ",\"transactional\":" + txn.json() + ",\"idempotent\":" + idem.json() + "}");
        System.out.flush();
        boolean good = !txn.ok && txn.seconds * 1000 < timeoutMs && idem.ok;
        System.exit(good ? 0 : 1);
    }

    static Properties common(String bootstrap, long timeoutMs) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(timeoutMs));
        return p;
    }

    static Result transactional(String bootstrap, long timeoutMs) {
        Properties p = common(bootstrap, timeoutMs);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "cairn-txn-test-java");
        Result r = new Result();
        long start = System.nanoTime();
        KafkaProducer<String, String> producer = null;
        try {
            producer = new KafkaProducer<>(p);
            producer.initTransactions();
            r.ok = true;
        } catch (Exception e) {
            r.failed(e);
        } finally {
            r.seconds = (System.nanoTime() - start) / 1e9;
            if (producer != null) {
                producer.close(Duration.ofSeconds(1));
            }
        }
        return r;
    }

    static Result idempotent(String bootstrap, String topic, long timeoutMs) {
        Properties p = common(bootstrap, timeoutMs);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Long.toString(Math.min(timeoutMs, 30_000)));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(timeoutMs));
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        Result r = new Result();
        r.value = "java-idempotent-" + System.currentTimeMillis();
        long start = System.nanoTime();
        KafkaProducer<String, String> producer = null;
        try {
            producer = new KafkaProducer<>(p);
            RecordMetadata md = producer
                .send(new ProducerRecord<>(topic, 0, "java", r.value))
                .get(timeoutMs, TimeUnit.MILLISECONDS);
            r.ok = true;
            r.partition = md.partition();
            r.offset = md.offset();
        } catch (Exception e) {
            r.failed(e);
        } finally {
            r.seconds = (System.nanoTime() - start) / 1e9;
            if (producer != null) {
                producer.close(Duration.ofSeconds(5));
            }
        }
        return r;
    }

    static final class Result {
        boolean ok;
        double seconds;
        Throwable error;
        Integer partition;
        Long offset;
        String value;

        void failed(Throwable e) {
            ok = false;
            error = e;
        }

        String json() {
            StringBuilder b = new StringBuilder("{");
            b.append("\"ok\":").append(ok);
            b.append(",\"seconds\":").append(String.format(Locale.ROOT, "%.3f", seconds));
            if (value != null) {
                b.append(",\"value\":").append(str(value));
            }
            if (partition != null) {
                b.append(",\"partition\":").append(partition);
                b.append(",\"offset\":").append(offset);
            }
            if (error != null) {
                b.append(",\"exception\":").append(str(error.getClass().getName()));
                b.append(",\"message\":").append(str(error.getMessage()));
                List<String> causes = new ArrayList<>();
                for (Throwable t = error; t != null && causes.size() < 10; t = t.getCause()) {
                    causes.add("{\"exception\":" + str(t.getClass().getName())
                        + ",\"message\":" + str(t.getMessage()) + "}");
                }
                b.append(",\"causes\":[").append(String.join(",", causes)).append("]");
            }
            return b.append("}").toString();
        }
    }

    /** A JSON string, or null. */
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
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append("\"").toString();
    }
}
