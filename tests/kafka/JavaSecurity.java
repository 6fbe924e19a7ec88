// The Java Kafka client (Kafka's reference implementation) against a Cairn
// Kafka listener with SASL_PLAINTEXT and ACLs on (tests/it/kafka_security.rs):
//
//   javac -cp 'JARS/*' -d OUT JavaSecurity.java
//   java -cp 'OUT:JARS/*' JavaSecurity --bootstrap B --admin-password P
//
// As the super-user `admin` (SCRAM-SHA-512): creates the user `dave`
// (SCRAM-SHA-256, 4096 iterations) with Admin.alterUserScramCredentials,
// describes it, grants dave WRITE and READ on topic `java-secure` with
// Admin.createAcls, describes and (at the end) deletes the bindings. As
// `dave` (SCRAM-SHA-256): produces a record to `java-secure` and reads it
// back; a send to a topic without an ACL must fail with
// TopicAuthorizationException; after the ACLs are deleted, a send to
// `java-secure` must fail the same way.
//
// Prints one JSON line of step outcomes; exits 0.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaSecurity {
    static String bootstrap;

    static Properties sasl(String mechanism, String user, String password) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.mechanism", mechanism);
        p.put("sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                        + user + "\" password=\"" + password + "\";");
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "20000");
        return p;
    }

    static String json(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    /** The outcome of a send: "ok" or the innermost exception's class name. */
    static String send(Properties base, String topic) {
        Properties p = new Properties();
        p.putAll(base);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("max.block.ms", "15000");
        p.put("delivery.timeout.ms", "15000");
        p.put("request.timeout.ms", "10000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.send(new ProducerRecord<>(topic, "k", "from-java")).get(20, TimeUnit.SECONDS);
            return "ok";
        } catch (Exception e) {
            Throwable t = e;
            while (t.getCause() != null) {
                t = t.getCause();
            }
            return t.getClass().getSimpleName();
        }
    }

    public static void main(String[] args) throws Exception {
        String adminPassword = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--bootstrap")) bootstrap = args[++i];
            else if (args[i].equals("--admin-password")) adminPassword = args[++i];
        }
        List<String> out = new ArrayList<>();
        Properties adminProps = sasl("SCRAM-SHA-512", "admin", adminPassword);
        try (Admin admin = Admin.create(adminProps)) {
            admin.createTopics(List.of(new NewTopic("java-secure", 1, (short) 1),
                    new NewTopic("java-other", 1, (short) 1))).all().get();
            admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion("dave",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), "dave-pw")))
                    .all().get();
            Map<String, UserScramCredentialsDescription> users =
                    admin.describeUserScramCredentials(List.of("dave")).all().get();
            ScramCredentialInfo info = users.get("dave").credentialInfos().get(0);
            out.add("\"dave_described\":" + json(info.mechanism() + "/" + info.iterations()));
            ResourcePattern topic =
                    new ResourcePattern(ResourceType.TOPIC, "java-secure", PatternType.LITERAL);
            admin.createAcls(List.of(
                    new AclBinding(topic, new AccessControlEntry("User:dave", "*",
                            AclOperation.WRITE, AclPermissionType.ALLOW)),
                    new AclBinding(topic, new AccessControlEntry("User:dave", "*",
                            AclOperation.READ, AclPermissionType.ALLOW)))).all().get();
            AclBindingFilter daves = new AclBindingFilter(ResourcePatternFilter.ANY,
                    new AccessControlEntryFilter("User:dave", null, AclOperation.ANY,
                            AclPermissionType.ANY));
            out.add("\"acls_described\":" + admin.describeAcls(daves).values().get().size());

            Properties dave = sasl("SCRAM-SHA-256", "dave", "dave-pw");
            out.add("\"dave_send\":" + json(send(dave, "java-secure")));
            Properties c = new Properties();
            c.putAll(dave);
            c.put("key.deserializer", StringDeserializer.class.getName());
            c.put("value.deserializer", StringDeserializer.class.getName());
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
                TopicPartition tp = new TopicPartition("java-secure", 0);
                consumer.assign(List.of(tp));
                consumer.seekToBeginning(List.of(tp));
                int got = 0;
                long deadline = System.currentTimeMillis() + 20000;
                while (got == 0 && System.currentTimeMillis() < deadline) {
                    ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                    got += records.count();
                }
                out.add("\"dave_read\":" + got);
            }
            out.add("\"dave_send_unauthorized\":" + json(send(dave, "java-other")));
            out.add("\"wrong_password\":"
                    + json(send(sasl("SCRAM-SHA-256", "dave", "nope"), "java-secure")));
            int deleted = admin.deleteAcls(List.of(daves)).all().get().size();
            out.add("\"acls_deleted\":" + deleted);
            out.add("\"dave_send_after_delete\":" + json(send(dave, "java-secure")));
        }
        System.out.println("{" + String.join(",", out) + "}");
    }
}
