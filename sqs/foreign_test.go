package sqs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs/sqstest"
)

// foreignPublisher returns a conformance.Harness.PublishForeign that
// sends with the AWS SDK directly, as a producer that does not use mq
// would: headers as String attributes, or Binary ones for values that are
// not UTF-8. A standard queue has no key, so a key is mq.ErrNotSupported;
// on a FIFO queue (fifo: topics get ".fifo") the key is the
// MessageGroupId where SQS accepts it (printable ASCII), and a nil key
// uses the group "foreign".
func foreignPublisher(t testing.TB, fifo bool) func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
	client := sqs.NewFromConfig(sqstest.Config(t))
	return func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
		if key != nil && (!fifo || !printableASCII(key)) {
			return fmt.Errorf("sqs test: %w: no native key for %q on this queue", mq.ErrNotSupported, key)
		}
		if fifo {
			topic += ".fifo"
		}
		q, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(topic)})
		if err != nil {
			return err
		}
		in := &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(string(body)), MessageAttributes: map[string]types.MessageAttributeValue{}}
		for k, v := range headers {
			if utf8.Valid(v) {
				in.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(string(v))}
			} else {
				in.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("Binary"), BinaryValue: v}
			}
		}
		if fifo {
			group := "foreign"
			if key != nil {
				group = string(key)
			}
			in.MessageGroupId = aws.String(group)
			in.MessageDeduplicationId = aws.String(fmt.Sprintf("foreign-%016x", rand.Uint64()))
		}
		_, err = client.SendMessage(ctx, in)
		return err
	}
}

func printableASCII(b []byte) bool {
	return len(b) > 0 && !strings.ContainsFunc(string(b), func(r rune) bool { return r < '!' || r > '~' })
}
