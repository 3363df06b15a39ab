// Package kafka is the mq driver for Apache Kafka, built on
// github.com/segmentio/kafka-go. Import it for its side effect to open
// kafka:// URLs with mq.Open, or call New with a Config.
package kafka
