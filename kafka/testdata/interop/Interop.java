// Interop is the foreign Java client of kafka/interop_test.go: it writes
// and reads records with the Kafka distribution's own kafka-clients, as a
// Java service that does not use mq would. Compiled by the test with javac.
//
//   java Interop produce BOOTSTRAP TOPIC
//       Sends one record with a LongSerializer key (200), a byte-array
//       value, the headers text, bin, dup (twice) and null (a null value),
//       and CreateTime 2000-01-01T00:00:00Z, with acks=all; prints
//       {"partition":P,"offset":O}.
//   java Interop consume BOOTSTRAP TOPIC COUNT TIMEOUT_MS
//       Reads COUNT records from the start of every partition of TOPIC
//       (assigned, no group), waiting at most TIMEOUT_MS in all, and prints
//       one JSON object per record: partition, offset, key and value in hex
//       (null for null), timestamp, timestamp type, and the headers in
//       order as [key in hex, value in hex or null].
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.LongSerializer;

public class Interop {
    static final long CREATE_TIME = 946684800000L; // 2000-01-01T00:00:00Z

    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("produce")) {
            produce(args[1], args[2]);
        } else if (args.length == 5 && args[0].equals("consume")) {
            consume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]));
        } else {
            System.err.println("usage: Interop produce BOOTSTRAP TOPIC | consume BOOTSTRAP TOPIC COUNT TIMEOUT_MS");
            System.exit(2);
        }
    }

    static void produce(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("max.block.ms", "30000");
        p.put("delivery.timeout.ms", "30000");
        p.put("request.timeout.ms", "20000");
        try (KafkaProducer<Long, byte[]> producer = new KafkaProducer<>(p, new LongSerializer(), new ByteArraySerializer())) {
            RecordHeaders h = new RecordHeaders();
            h.add("text", "ünïcode".getBytes("UTF-8"));
            h.add("bin", new byte[] {(byte) 0xfe, 0x00, (byte) 0xff});
            h.add("dup", "first".getBytes("UTF-8"));
            h.add("dup", "last".getBytes("UTF-8"));
            h.add("null", null);
            byte[] value = new byte[] {0x00, (byte) 0xff, 'j', 'v', 'm'};
            RecordMetadata md = producer.send(new ProducerRecord<>(topic, null, CREATE_TIME, 200L, value, h)).get();
            System.out.println("{\"partition\":" + md.partition() + ",\"offset\":" + md.offset() + "}");
        }
    }

    static void consume(String bootstrap, String topic, int count, long timeoutMs) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("enable.auto.commit", "false");
        p.put("isolation.level", "read_committed");
        long deadline = System.currentTimeMillis() + timeoutMs;
        int got = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : consumer.partitionsFor(topic, Duration.ofMillis(timeoutMs))) {
                tps.add(new TopicPartition(topic, pi.partition()));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            while (got < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    got++;
                    StringBuilder b = new StringBuilder();
                    b.append("{\"partition\":").append(r.partition())
                        .append(",\"offset\":").append(r.offset())
                        .append(",\"key\":").append(hex(r.key()))
                        .append(",\"value\":").append(hex(r.value()))
                        .append(",\"timestamp\":").append(r.timestamp())
                        .append(",\"timestamp_type\":\"").append(r.timestampType().name).append("\"")
                        .append(",\"headers\":[");
                    boolean first = true;
                    for (Header h : r.headers()) {
                        if (!first) {
                            b.append(",");
                        }
                        first = false;
                        b.append("[").append(hex(h.key().getBytes(java.nio.charset.StandardCharsets.UTF_8))).append(",").append(hex(h.value())).append("]");
                    }
                    b.append("]}");
                    System.out.println(b);
                }
            }
        }
        if (got < count) {
            System.err.println("Interop: got " + got + " of " + count + " records from " + topic + " within " + timeoutMs + "ms");
            System.exit(1);
        }
    }

    // hex returns b as a JSON string of hex digits, or null.
    static String hex(byte[] b) {
        if (b == null) {
            return "null";
        }
        StringBuilder s = new StringBuilder("\"");
        for (byte x : b) {
            s.append(String.format("%02x", x & 0xff));
        }
        return s.append("\"").toString();
    }
}
