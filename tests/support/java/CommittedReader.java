import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The Java client's read_committed view of a topic, for tests that must not trust one client
 * alone: every record up to each partition's last stable offset, one line each on stdout:
 * partition, offset, value as hex. Usage: java -cp 'libs/*' CommittedReader.java BROKERS TOPIC
 */
public class CommittedReader {
  public static void main(String[] args) {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("isolation.level", "read_committed");
    p.put("enable.auto.commit", "false");
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo info : consumer.partitionsFor(args[1])) partitions.add(new TopicPartition(args[1], info.partition()));
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      // Under read_committed, the end offsets are the last stable offsets.
      Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
      HexFormat hex = HexFormat.of();
      long deadline = System.currentTimeMillis() + 120_000;
      while (partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("not read to the end within 120 s");
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          System.out.println(r.partition() + " " + r.offset() + " " + (r.value() == null ? "-" : hex.formatHex(r.value())));
        }
      }
    }
  }
}
