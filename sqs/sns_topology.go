package sqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// maxTopicName is SNS's limit on a topic name, ".fifo" included.
const maxTopicName = 256

// snsTopic is one topic's SNS topic, resolved once per SNSBroker.
type snsTopic struct {
	name string
	arn  string
	fifo bool
	pub  *publisher // sends with PublishBatch
}

// groupQueue is one group's queue, subscribed to its topic.
type groupQueue struct {
	q   *queue
	dlq string // its dead-letter queue URL, "" if none
}

// checkTopicName applies SNS's rules for topic names: 1 to 256 characters
// from [A-Za-z0-9_-], plus the ".fifo" suffix for FIFO topics.
func checkTopicName(name, what string) error {
	base := strings.TrimSuffix(name, fifoSuffix)
	problem := ""
	switch {
	case base == "":
		problem = "is empty"
	case len(name) > maxTopicName:
		problem = fmt.Sprintf("is %d characters, SNS allows %d (with the .fifo suffix)", len(name), maxTopicName)
	default:
		for i := 0; i < len(base); i++ {
			c := base[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				problem = fmt.Sprintf("contains %q; SNS topic names use only letters, digits, '-' and '_' (and a final .fifo)", c)
				break
			}
		}
	}
	if problem == "" {
		return nil
	}
	if what == "topic" {
		return fmt.Errorf("sqs: %w: SNS topic name %q %s", mq.ErrInvalidTopic, name, problem)
	}
	return fmt.Errorf("sqs: %w: %s: SNS topic name %q %s", mq.ErrInvalidOption, what, name, problem)
}

// topicName maps a topic to its SNS topic name.
func (s *SNSBroker) topicName(topic string) (string, error) {
	if err := driver.ValidateName("topic", topic); err != nil {
		return "", fmt.Errorf("sqs: %w", err)
	}
	name := s.opts.TopicPrefix + topic
	if s.opts.FIFO && !strings.HasSuffix(name, fifoSuffix) {
		name += fifoSuffix
	}
	if err := checkTopicName(name, "topic"); err != nil {
		return "", err
	}
	return name, nil
}

// queueName maps a topic and group to the group's queue name, checking
// the topic's name too.
func (s *SNSBroker) queueName(topic, group string) (string, error) {
	tname, err := s.topicName(topic)
	if err != nil {
		return "", err
	}
	if err := driver.ValidateName("group", group); err != nil {
		return "", fmt.Errorf("sqs: %w", err)
	}
	name := strings.NewReplacer("{topic}", strings.TrimSuffix(topic, fifoSuffix), "{group}", group).Replace(s.opts.QueueName)
	name = s.opts.QueuePrefix + name
	if strings.HasSuffix(tname, fifoSuffix) {
		name += fifoSuffix
	}
	if err := checkQueueName(name, fmt.Sprintf("group %q of topic %q", group, topic)); err != nil {
		return "", err
	}
	return name, nil
}

// lock takes the one-lookup-at-a-time semaphore.
func (s *SNSBroker) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case s.resolving <- struct{}{}:
		return func() { <-s.resolving }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("sqs: %w", ctx.Err())
	}
}

// topic returns topic's SNS topic, creating it if create is true (SNS's
// CreateTopic returns an existing topic's ARN), and otherwise looking it
// up with ListTopics: a missing topic is mq.ErrNotFound.
func (s *SNSBroker) topic(ctx context.Context, topic string, create bool) (*snsTopic, error) {
	s.mu.Lock()
	t := s.topics[topic]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	name, err := s.topicName(topic)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s.mu.Lock()
	t = s.topics[topic]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	fifo := strings.HasSuffix(name, fifoSuffix)
	var arn string
	if create {
		in := &sns.CreateTopicInput{Name: aws.String(name)}
		if fifo {
			in.Attributes = map[string]string{"FifoTopic": "true"}
		}
		out, err := s.sns.CreateTopic(ctx, in)
		if err != nil {
			return nil, wrapSNSErr(ctx, "CreateTopic "+name, err)
		}
		arn = aws.ToString(out.TopicArn)
	} else {
		if arn, err = s.findTopic(ctx, name); err != nil {
			return nil, err
		}
		if arn == "" {
			return nil, fmt.Errorf("sqs: %w: SNS topic %q for topic %q does not exist and provisioning is off (provision it, or open with provision=true)", mq.ErrNotFound, name, topic)
		}
	}
	if err := s.b.l.Err(); err != nil {
		return nil, fmt.Errorf("sqs: %w", err)
	}
	t = &snsTopic{name: name, arn: arn, fifo: fifo}
	// The publisher's queue stands for the topic: its name appears in
	// errors, and fifo keeps batches in publish order.
	t.pub = &publisher{b: s.b, q: &queue{topic: topic, name: name, url: arn, fifo: fifo}}
	t.pub.batch = func(ctx context.Context, entries []types.SendMessageBatchRequestEntry) (*sqs.SendMessageBatchOutput, error) {
		return s.publishBatch(ctx, arn, entries)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics[topic] = t
	return t, nil
}

// findTopic returns the ARN of the SNS topic named name, or "" if there is
// none. SNS has no lookup by name: it pages through ListTopics.
func (s *SNSBroker) findTopic(ctx context.Context, name string) (string, error) {
	p := sns.NewListTopicsPaginator(s.sns, &sns.ListTopicsInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", wrapSNSErr(ctx, "ListTopics", err)
		}
		for _, t := range out.Topics {
			arn := aws.ToString(t.TopicArn)
			if arnName(arn) == name {
				return arn, nil
			}
		}
	}
	return "", nil
}

// arnName returns the resource name at the end of an ARN.
func arnName(arn string) string {
	return arn[strings.LastIndexByte(arn, ':')+1:]
}

// group returns the queue of group on topic, subscribed to the topic's
// SNS topic with raw message delivery. With create, it creates what is
// missing: the topic, the queue (with the redrive policy the options ask
// for), the queue policy statement that lets the topic send to the queue,
// and the subscription, in that order, so that the topic never delivers
// to a queue that refuses it. Without, a missing topic, queue or
// subscription is mq.ErrNotFound.
func (s *SNSBroker) group(ctx context.Context, topic, group string, create bool) (*groupQueue, error) {
	key := [2]string{topic, group}
	s.mu.Lock()
	g := s.groups[key]
	s.mu.Unlock()
	if g != nil {
		return g, nil
	}
	name, err := s.queueName(topic, group)
	if err != nil {
		return nil, err
	}
	t, err := s.topic(ctx, topic, create)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s.mu.Lock()
	g = s.groups[key]
	s.mu.Unlock()
	if g != nil {
		return g, nil
	}
	b := s.b
	url, err := b.queueURL(ctx, name)
	if err != nil && create && isQueueMissing(err) {
		url, err = b.createQueue(ctx, topic, group, name)
	}
	if err != nil {
		if isQueueMissing(err) {
			return nil, fmt.Errorf("sqs: %w: queue %q for group %q of topic %q does not exist and provisioning is off (provision it, or open with provision=true)", mq.ErrNotFound, name, group, topic)
		}
		return nil, wrapErr(ctx, "queue "+name, err)
	}
	attrs, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn, types.QueueAttributeNamePolicy},
	})
	if err != nil {
		return nil, wrapErr(ctx, "GetQueueAttributes "+name, err)
	}
	queueARN := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	if create {
		policy, changed, err := allowTopic(attrs.Attributes[string(types.QueueAttributeNamePolicy)], queueARN, t.arn)
		if err != nil {
			return nil, fmt.Errorf("sqs: queue %q: %w", name, err)
		}
		if changed {
			_, err := b.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
				QueueUrl:   aws.String(url),
				Attributes: map[string]string{string(types.QueueAttributeNamePolicy): policy},
			})
			if err != nil {
				return nil, wrapErr(ctx, "SetQueueAttributes (policy) "+name, err)
			}
		}
	}
	if err := s.subscribeQueue(ctx, t, name, queueARN, create); err != nil {
		return nil, err
	}
	q := &queue{topic: topic, name: name, url: url, fifo: t.fifo, group: group}
	dlq, err := b.deadLetterURL(ctx, q)
	if err != nil {
		return nil, err
	}
	if err := b.l.Err(); err != nil {
		return nil, fmt.Errorf("sqs: %w", err)
	}
	g = &groupQueue{q: q, dlq: dlq}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[key] = g
	return g, nil
}

// rawDelivery is the subscription attribute that makes SNS deliver a
// message's body and attributes as published, not in a JSON envelope.
const rawDelivery = "RawMessageDelivery"

// subscribeQueue makes sure the queue (by ARN) is subscribed to t with
// raw message delivery: with create, it subscribes it (SNS's Subscribe
// returns an existing subscription with the same attributes) or turns raw
// delivery on in an existing subscription; without, a missing
// subscription is mq.ErrNotFound and one without raw delivery an error.
func (s *SNSBroker) subscribeQueue(ctx context.Context, t *snsTopic, name, queueARN string, create bool) error {
	if create {
		_, err := s.sns.Subscribe(ctx, &sns.SubscribeInput{
			TopicArn:              aws.String(t.arn),
			Protocol:              aws.String("sqs"),
			Endpoint:              aws.String(queueARN),
			Attributes:            map[string]string{rawDelivery: "true"},
			ReturnSubscriptionArn: true,
		})
		if err == nil {
			return nil
		}
		if errorCode(err) != "InvalidParameter" {
			return wrapSNSErr(ctx, "Subscribe "+name+" to "+t.name, err)
		}
		// Subscribed already, with other attributes: turn raw delivery on below.
	}
	sub, err := s.findSubscription(ctx, t, queueARN)
	if err != nil {
		return err
	}
	if sub == "" {
		return fmt.Errorf("sqs: %w: queue %q is not subscribed to SNS topic %q and provisioning is off (provision it, or open with provision=true)", mq.ErrNotFound, name, t.name)
	}
	out, err := s.sns.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: aws.String(sub)})
	if err != nil {
		return wrapSNSErr(ctx, "GetSubscriptionAttributes "+sub, err)
	}
	if out.Attributes[rawDelivery] == "true" {
		return nil
	}
	if !create {
		return fmt.Errorf("sqs: %w: the subscription of queue %q to SNS topic %q has no raw message delivery, so messages would arrive wrapped in SNS's JSON envelope: set its RawMessageDelivery attribute to true (or open with provision=true)", mq.ErrInvalidOption, name, t.name)
	}
	_, err = s.sns.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{
		SubscriptionArn: aws.String(sub), AttributeName: aws.String(rawDelivery), AttributeValue: aws.String("true"),
	})
	return wrapSNSErr(ctx, "SetSubscriptionAttributes "+sub, err)
}

// findSubscription returns the ARN of the confirmed subscription of the
// queue queueARN to t, or "" if there is none.
func (s *SNSBroker) findSubscription(ctx context.Context, t *snsTopic, queueARN string) (string, error) {
	p := sns.NewListSubscriptionsByTopicPaginator(s.sns, &sns.ListSubscriptionsByTopicInput{TopicArn: aws.String(t.arn)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", wrapSNSErr(ctx, "ListSubscriptionsByTopic "+t.name, err)
		}
		for _, sub := range out.Subscriptions {
			arn := aws.ToString(sub.SubscriptionArn)
			if aws.ToString(sub.Protocol) == "sqs" && aws.ToString(sub.Endpoint) == queueARN && strings.HasPrefix(arn, "arn:") {
				return arn, nil
			}
		}
	}
	return "", nil
}

// allowTopic returns the queue policy doc with a statement added that lets
// SNS topic topicARN send to queue queueARN, and whether it added one: a
// policy that already has an Allow statement naming the topic is left as
// it is. Without it, SNS cannot deliver to the queue and drops what it
// would deliver (AWS enforces this; moto and ElasticMQ do not).
func allowTopic(doc, queueARN, topicARN string) (string, bool, error) {
	policy := map[string]any{}
	if doc != "" {
		if err := json.Unmarshal([]byte(doc), &policy); err != nil {
			return "", false, fmt.Errorf("its policy is not JSON: %w", err)
		}
	}
	var statements []any
	switch st := policy["Statement"].(type) {
	case nil:
	case []any:
		statements = st
	case map[string]any:
		statements = []any{st}
	default:
		return "", false, fmt.Errorf("its policy has a Statement that is neither an object nor a list")
	}
	for _, st := range statements {
		m, _ := st.(map[string]any)
		raw, _ := json.Marshal(m)
		if m["Effect"] == "Allow" && strings.Contains(string(raw), `"`+topicARN+`"`) {
			return doc, false, nil
		}
	}
	sum := sha256.Sum256([]byte(topicARN))
	statements = append(statements, map[string]any{
		"Sid":       "mq-sns-" + hex.EncodeToString(sum[:8]),
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "sns.amazonaws.com"},
		"Action":    "sqs:SendMessage",
		"Resource":  queueARN,
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": topicARN}},
	})
	if _, ok := policy["Version"]; !ok {
		policy["Version"] = "2012-10-17"
	}
	policy["Statement"] = statements
	out, err := json.Marshal(policy)
	if err != nil {
		return "", false, err
	}
	return string(out), true, nil
}

// Provision creates topic's SNS topic if it does not exist and, for each
// group, the group's queue (with the redrive policy the options ask
// for), the queue policy statement that lets the topic send to it, and
// its subscription with raw message delivery. Messages published after
// Provision wait in every group's queue. It creates what is missing also
// with provisioning off, and is idempotent.
func (s *SNSBroker) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := s.b.l.Err(); err != nil {
		return fmt.Errorf("sqs: Provision: %w", err)
	}
	for _, g := range groups {
		if _, err := s.queueName(topic, g); err != nil {
			return err
		}
	}
	if _, err := s.topic(ctx, topic, true); err != nil {
		return err
	}
	for _, g := range groups {
		if _, err := s.group(ctx, topic, g, true); err != nil {
			return err
		}
	}
	return nil
}
