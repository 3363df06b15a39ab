// MqJava is the Java side of the kafka driver's interoperability tests
// (kafka/javaclient_test.go, javagroup_test.go, interop_test.go), compiled at
// test time against the kafka-clients jar of the Kafka distribution
// scripts/brokers installs.
//
// Usage: java MqJava MODE BOOTSTRAP TOPIC [GROUP]
//
//   consume BOOTSTRAP TOPIC GROUP
//       A KafkaConsumer in GROUP with the client's default assignors
//       (range, cooperative-sticky) and read_committed. Prints
//       "ASSIGNED p,p,..." (sorted) and "REVOKED p,..." on rebalances and
//       "RECORD partition offset value" per record, commits after each
//       poll, and stops (commit, leave, "CLOSED", exit 0) when its stdin
//       closes. Any exception prints "EXCEPTION ..." and exits 2.
//   txn BOOTSTRAP TOPIC
//       A transactional producer: commits c1-0..c1-2, aborts a-0..a-2,
//       commits c2-0..c2-1, prints "DONE".
//   binary BOOTSTRAP TOPIC
//       Produces records with LongSerializer keys and binary header
//       values (see interop_test.go for the exact bytes), prints "DONE".
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class MqJava {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: MqJava consume|txn|binary BOOTSTRAP TOPIC [GROUP]");
            System.exit(64);
        }
        try {
            switch (args[0]) {
                case "consume":
                    consume(args[1], args[2], args[3]);
                    break;
                case "txn":
                    txn(args[1], args[2]);
                    break;
                case "binary":
                    binary(args[1], args[2]);
                    break;
                default:
                    System.err.println("unknown mode " + args[0]);
                    System.exit(64);
            }
        } catch (Throwable e) {
            say("EXCEPTION " + e.toString().replace('\n', ' '));
            e.printStackTrace();
            System.exit(2);
        }
        System.exit(0);
    }

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static String partitions(Collection<TopicPartition> tps) {
        List<Integer> ids = new ArrayList<>();
        for (TopicPartition tp : tps) {
            ids.add(tp.partition());
        }
        Collections.sort(ids);
        List<String> out = new ArrayList<>();
        for (Integer id : ids) {
            out.add(id.toString());
        }
        return String.join(",", out);
    }

    static void consume(String bootstrap, String topic, String group) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("client.id", "java-" + group);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", "read_committed");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "500");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        Thread stdin = new Thread(() -> {
            try {
                InputStream in = System.in;
                while (in.read() >= 0) {
                }
            } catch (Exception e) {
                // stop in any case
            }
            c.wakeup();
        });
        stdin.setDaemon(true);
        stdin.start();
        c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                c.commitSync();
                say("REVOKED " + partitions(tps));
            }

            public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                say("ASSIGNED " + partitions(c.assignment()));
            }
        });
        try {
            while (true) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<byte[], byte[]> r : rs) {
                    String v = r.value() == null ? "" : new String(r.value(), "UTF-8");
                    say("RECORD " + r.partition() + " " + r.offset() + " " + v);
                }
                if (!rs.isEmpty()) {
                    c.commitSync();
                }
            }
        } catch (WakeupException e) {
            // stdin closed: stop
        }
        c.commitSync();
        c.close(Duration.ofSeconds(10));
        say("CLOSED");
    }

    static void txn(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", "mqtest-" + topic);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> pr = new KafkaProducer<>(p)) {
            pr.initTransactions();
            pr.beginTransaction();
            for (int i = 0; i < 3; i++) {
                pr.send(new ProducerRecord<>(topic, "k", "c1-" + i));
            }
            pr.commitTransaction();
            pr.beginTransaction();
            for (int i = 0; i < 3; i++) {
                pr.send(new ProducerRecord<>(topic, "k", "a-" + i));
            }
            pr.flush();
            pr.abortTransaction();
            pr.beginTransaction();
            for (int i = 0; i < 2; i++) {
                pr.send(new ProducerRecord<>(topic, "k", "c2-" + i));
            }
            pr.commitTransaction();
        }
        say("DONE");
    }

    static void binary(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", LongSerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        long[] keys = {0x0102030405060708L, -1L, 0L};
        try (KafkaProducer<Long, byte[]> pr = new KafkaProducer<>(p)) {
            for (int i = 0; i < keys.length; i++) {
                ProducerRecord<Long, byte[]> r = new ProducerRecord<>(topic, 0, keys[i],
                        new byte[] {0, (byte) 0xff, (byte) 0xfe, (byte) i});
                r.headers().add(new RecordHeader("bin", new byte[] {0, (byte) 0xff, (byte) 0x80, (byte) i}));
                r.headers().add(new RecordHeader("utf", "h\u00e9llo".getBytes("UTF-8")));
                r.headers().add(new RecordHeader("empty", new byte[0]));
                pr.send(r).get();
            }
        }
        say("DONE");
    }
}
