// The Java admin client (Kafka's reference implementation) against Cairn's
// configs (tests/it/kafka.rs). Compiled and run by the test:
//
//   javac -cp 'JARS/*' -d OUT JavaAdmin.java
//   java -cp 'OUT:JARS/*' JavaAdmin --bootstrap B COMMAND ARGS...
//
// Commands, each printing one JSON line ({"error": ...} when it failed):
//   topic-configs TOPIC K=V...   creates TOPIC (1 partition, 1 replica) with
//                                the configs, describes them, DELETEs them all
//                                and describes again, then APPENDs "compact"
//                                to cleanup.policy and SUBTRACTs "delete":
//                                {"created": {K: {"value", "source"}}, "deleted": {...},
//                                 "appended": V, "subtracted": V}
//   broker-config BROKER K V     SETs broker config K on BROKER, describes it,
//                                DELETEs it, describes it: {"set": {...}, "deleted": {...}}
//   loggers describe BROKER      {"loggers": {LOGGER: LEVEL}}
//   loggers set BROKER L=LEVEL   {"ok": true}
//   loggers delete BROKER L      {"ok": true}

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.ConfigResource;

public class JavaAdmin {
    public static void main(String[] argv) throws Exception {
        if (argv.length < 3 || !argv[0].equals("--bootstrap")) {
            System.err.println("usage: JavaAdmin --bootstrap B COMMAND ARGS...");
            System.exit(2);
        }
        String out;
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, argv[1]))) {
            out = run(admin, argv);
        } catch (ExecutionException e) {
            out = error(e.getCause());
        } catch (Exception e) {
            out = error(e);
        }
        System.out.println(out);
        System.out.flush();
        System.exit(0);
    }

    static String error(Throwable e) {
        return "{\"error\":" + str(e.getClass().getSimpleName()) + ",\"message\":" + str(e.getMessage()) + "}";
    }

    static String run(Admin admin, String[] argv) throws Exception {
        switch (argv[2]) {
            case "topic-configs": return topicConfigs(admin, argv[3], List.of(argv).subList(4, argv.length));
            case "broker-config": return brokerConfig(admin, argv[3], argv[4], argv[5]);
            case "loggers": return loggers(admin, argv[3], argv[4], argv.length > 5 ? argv[5] : null);
            default: throw new IllegalArgumentException("unknown command " + argv[2]);
        }
    }

    static String topicConfigs(Admin admin, String topic, List<String> pairs) throws Exception {
        Map<String, String> configs = new TreeMap<>();
        for (String kv : pairs) {
            int i = kv.indexOf('=');
            configs.put(kv.substring(0, i), kv.substring(i + 1));
        }
        admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(configs))).all().get();
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        String created = describe(admin, r);
        List<AlterConfigOp> deletes = new ArrayList<>();
        for (String k : configs.keySet()) {
            deletes.add(new AlterConfigOp(new ConfigEntry(k, null), AlterConfigOp.OpType.DELETE));
        }
        admin.incrementalAlterConfigs(Map.of(r, deletes)).all().get();
        String deleted = describe(admin, r);
        admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
            new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)))).all().get();
        String appended = admin.describeConfigs(List.of(r)).all().get().get(r).get("cleanup.policy").value();
        admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
            new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT)))).all().get();
        String subtracted = admin.describeConfigs(List.of(r)).all().get().get(r).get("cleanup.policy").value();
        return "{\"created\":" + created + ",\"deleted\":" + deleted + ",\"appended\":" + str(appended)
            + ",\"subtracted\":" + str(subtracted) + "}";
    }

    static String brokerConfig(Admin admin, String broker, String key, String value) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, broker);
        admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
            new ConfigEntry(key, value), AlterConfigOp.OpType.SET)))).all().get();
        String set = entry(admin.describeConfigs(List.of(r)).all().get().get(r).get(key));
        admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
            new ConfigEntry(key, null), AlterConfigOp.OpType.DELETE)))).all().get();
        String deleted = entry(admin.describeConfigs(List.of(r)).all().get().get(r).get(key));
        return "{\"set\":" + set + ",\"deleted\":" + deleted + "}";
    }

    static String loggers(Admin admin, String what, String broker, String arg) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER_LOGGER, broker);
        switch (what) {
            case "describe": {
                Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
                List<String> items = new ArrayList<>();
                for (ConfigEntry e : c.entries()) {
                    items.add(str(e.name()) + ":" + str(e.value()));
                }
                return "{\"loggers\":{" + String.join(",", items) + "}}";
            }
            case "set": {
                int i = arg.indexOf('=');
                admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry(arg.substring(0, i), arg.substring(i + 1)), AlterConfigOp.OpType.SET))))
                    .all().get();
                return "{\"ok\":true}";
            }
            case "delete": {
                admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry(arg, null), AlterConfigOp.OpType.DELETE)))).all().get();
                return "{\"ok\":true}";
            }
            default: throw new IllegalArgumentException("loggers " + what);
        }
    }

    static String describe(Admin admin, ConfigResource r) throws Exception {
        Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
        List<String> items = new ArrayList<>();
        for (ConfigEntry e : c.entries()) {
            items.add(str(e.name()) + ":" + entry(e));
        }
        return "{" + String.join(",", items) + "}";
    }

    static String entry(ConfigEntry e) {
        return "{\"value\":" + str(e.value()) + ",\"source\":" + str(String.valueOf(e.source()))
            + ",\"read_only\":" + e.isReadOnly() + "}";
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
