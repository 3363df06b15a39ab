package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

const (
	// groupTag is the queue tag recording the mq group the queue serves.
	groupTag = "mq-group"
	// fifoSuffix ends the names of FIFO queues.
	fifoSuffix = ".fifo"
	// maxQueueName is SQS's limit on a queue name, suffix included.
	maxQueueName = 80
)

// queue is one topic's SQS queue, resolved once per Broker.
type queue struct {
	topic string
	name  string
	url   string
	fifo  bool
	pub   *publisher

	mu    sync.Mutex
	group string // the group known to use this queue, "" if none yet
}

// checkQueueName applies SQS's rules for queue names: 1 to 80 characters
// from [A-Za-z0-9_-], plus the ".fifo" suffix for FIFO queues.
func checkQueueName(name, what string) error {
	base := strings.TrimSuffix(name, fifoSuffix)
	problem := ""
	switch {
	case base == "":
		problem = "is empty"
	case len(name) > maxQueueName:
		problem = fmt.Sprintf("is %d characters, SQS allows %d (with the .fifo suffix)", len(name), maxQueueName)
	default:
		for _, r := range base { // by rune, so the error shows 'ó', not a byte of it
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
				problem = fmt.Sprintf("contains %q; SQS queue names use only letters, digits, '-' and '_' (and a final .fifo)", r)
				break
			}
		}
	}
	if problem == "" {
		return nil
	}
	if what == "topic" {
		return fmt.Errorf("sqs: %w: queue name %q %s", mq.ErrInvalidTopic, name, problem)
	}
	return fmt.Errorf("sqs: %w: %s: queue name %q %s", mq.ErrInvalidOption, what, name, problem)
}

// queueName maps a topic to its queue name.
func (b *Broker) queueName(topic string) (string, error) {
	if err := driver.ValidateName("topic", topic); err != nil {
		return "", fmt.Errorf("sqs: %w", err)
	}
	name := b.opts.QueuePrefix + topic
	if b.opts.FIFO && !strings.HasSuffix(name, fifoSuffix) {
		name += fifoSuffix
	}
	if err := checkQueueName(name, "topic"); err != nil {
		return "", err
	}
	return name, nil
}

// queue returns topic's queue, looking up its URL on first use and
// creating the queue if it is missing and create is true; otherwise a
// missing queue is mq.ErrNotFound.
func (b *Broker) queue(ctx context.Context, topic string, create bool) (*queue, error) {
	b.queuesMu.Lock()
	q := b.queues[topic]
	b.queuesMu.Unlock()
	if q != nil {
		return q, nil
	}
	name, err := b.queueName(topic)
	if err != nil {
		return nil, err
	}
	// One lookup per topic, however many calls arrive at once.
	select {
	case b.resolving <- struct{}{}:
		defer func() { <-b.resolving }()
	case <-ctx.Done():
		return nil, fmt.Errorf("sqs: queue %s: %w", name, ctx.Err())
	}
	b.queuesMu.Lock()
	q = b.queues[topic]
	b.queuesMu.Unlock()
	if q != nil {
		return q, nil
	}
	url, err := b.queueURL(ctx, name)
	if err != nil && create && isQueueMissing(err) {
		url, err = b.createQueue(ctx, topic, "", name)
	}
	if err != nil {
		if isQueueMissing(err) {
			return nil, fmt.Errorf("sqs: %w: queue %q for topic %q does not exist and provisioning is off (provision it, or open with provision=true)", mq.ErrNotFound, name, topic)
		}
		return nil, wrapErr(ctx, "queue "+name, err)
	}

	b.queuesMu.Lock()
	defer b.queuesMu.Unlock()
	if q := b.queues[topic]; q != nil {
		return q, nil
	}
	if err := b.l.Err(); err != nil {
		return nil, fmt.Errorf("sqs: %w", err)
	}
	q = &queue{topic: topic, name: name, url: url, fifo: strings.HasSuffix(name, fifoSuffix)}
	q.pub = &publisher{b: b, q: q}
	b.queues[topic] = q
	return q, nil
}

func (b *Broker) queueURL(ctx context.Context, name string) (string, error) {
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(name)}
	if b.opts.QueueOwner != "" {
		in.QueueOwnerAWSAccountId = aws.String(b.opts.QueueOwner)
	}
	out, err := b.client.GetQueueUrl(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.QueueUrl), nil
}

// createQueue creates the queue name for topic (and group, for sns+sqs),
// with the FIFO attribute and the redrive policy the options ask for, and
// returns its URL. A queue that exists already (perhaps with other
// attributes) is used as it is.
func (b *Broker) createQueue(ctx context.Context, topic, group, name string) (string, error) {
	attrs := map[string]string{}
	fifo := strings.HasSuffix(name, fifoSuffix)
	if fifo {
		attrs[string(types.QueueAttributeNameFifoQueue)] = "true"
	}
	if b.opts.DeadLetterQueue != "" {
		arn, err := b.deadLetterARN(ctx, topic, group)
		if err != nil {
			return "", err
		}
		policy, _ := json.Marshal(map[string]string{
			"deadLetterTargetArn": arn,
			"maxReceiveCount":     strconv.Itoa(b.opts.MaxReceiveCount),
		})
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = string(policy)
	}
	out, err := b.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if errorCode(err) == "QueueNameExists" || errorCode(err) == "QueueAlreadyExists" {
		return b.queueURL(ctx, name)
	}
	if err != nil {
		return "", err
	}
	b.log.Debug("sqs: created queue", "queue", name, "fifo", fifo)
	return aws.ToString(out.QueueUrl), nil
}

// deadLetterARN returns the ARN of topic's dead-letter queue, creating the
// queue if Options.DeadLetterQueue names one that does not exist. A group
// (sns+sqs only) replaces "{group}" in the name.
func (b *Broker) deadLetterARN(ctx context.Context, topic, group string) (string, error) {
	dlq := strings.ReplaceAll(b.opts.DeadLetterQueue, "{topic}", topic)
	if group != "" {
		dlq = strings.ReplaceAll(dlq, "{group}", group)
	}
	if strings.HasPrefix(dlq, "arn:") {
		return dlq, nil
	}
	if err := checkQueueName(dlq, "DeadLetterQueue"); err != nil {
		return "", err
	}
	url, err := b.queueURL(ctx, dlq)
	if isQueueMissing(err) {
		attrs := map[string]string{}
		if strings.HasSuffix(dlq, fifoSuffix) {
			attrs[string(types.QueueAttributeNameFifoQueue)] = "true"
		}
		var out *sqs.CreateQueueOutput
		out, err = b.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(dlq), Attributes: attrs})
		if err == nil {
			url = aws.ToString(out.QueueUrl)
		}
	}
	if err != nil {
		return "", err
	}
	out, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", err
	}
	return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
}

// deadLetterURL returns the URL of the queue's dead-letter queue from its
// redrive policy, or "" if it has none.
func (b *Broker) deadLetterURL(ctx context.Context, q *queue) (string, error) {
	out, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		if isAccessDenied(err) {
			return "", nil
		}
		return "", wrapErr(ctx, "GetQueueAttributes "+q.name, err)
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", nil
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil || policy.DeadLetterTargetArn == "" {
		return "", fmt.Errorf("sqs: queue %q has a redrive policy without a dead-letter target: %s", q.name, raw)
	}
	// arn:aws:sqs:REGION:ACCOUNT:NAME
	parts := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(parts) != 6 {
		return "", fmt.Errorf("sqs: queue %q has a dead-letter target that is not an SQS queue ARN: %q", q.name, policy.DeadLetterTargetArn)
	}
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])}
	o, err := b.client.GetQueueUrl(ctx, in)
	if err != nil {
		return "", wrapErr(ctx, "dead-letter queue "+parts[5], err)
	}
	return aws.ToString(o.QueueUrl), nil
}

// claimGroup records that group consumes q, or fails with
// mq.ErrNotSupported if another group does: an SQS queue is one group.
// The group is kept in the queue's "mq-group" tag, so the check holds
// across processes; claim false only reads the tag. Without permission to
// read or write tags, only this Broker's own use is checked. An empty
// group joins the queue's group, whatever it is. It returns the group the
// queue serves ("" if none is known).
func (b *Broker) claimGroup(ctx context.Context, q *queue, group string, claim bool) (string, error) {
	q.mu.Lock()
	known := q.group
	q.mu.Unlock()
	if group != "" && known == group {
		return group, nil
	}
	if known == "" {
		out, err := b.client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(q.url)})
		switch {
		case err == nil:
			known = out.Tags[groupTag]
		case isAccessDenied(err):
		default:
			return "", wrapErr(ctx, "ListQueueTags "+q.name, err)
		}
	}
	if group == "" {
		return known, nil
	}
	if known != "" && known != group {
		return "", fmt.Errorf("sqs: %w: topic %q is consumed by group %q, so group %q cannot subscribe: SQS has no fan-out, a queue is one group and a second group would compete for its messages instead of receiving each. Use one topic per consuming service (publish to each), or SNS fan-out to one queue per group (the queue tag %q records the group)",
			mq.ErrNotSupported, q.topic, known, group, groupTag)
	}
	if known == "" && claim {
		_, err := b.client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(q.url), Tags: map[string]string{groupTag: group}})
		if err != nil && !isAccessDenied(err) {
			return "", wrapErr(ctx, "TagQueue "+q.name, err)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.group != "" && q.group != group {
		return "", fmt.Errorf("sqs: %w: topic %q is consumed by group %q, so group %q cannot subscribe: SQS has no fan-out", mq.ErrNotSupported, q.topic, q.group, group)
	}
	q.group = group
	return group, nil
}

// Provision creates topic's queue if it does not exist (with the FIFO and
// redrive attributes the options ask for) and records groups[0], if
// given, as the group that consumes it. An SQS queue is one group: more
// than one distinct group is mq.ErrNotSupported, as is a group other than
// the one already recorded. Messages published after Provision wait in the
// queue. It is idempotent.
func (b *Broker) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := b.l.Err(); err != nil {
		return fmt.Errorf("sqs: Provision: %w", err)
	}
	group := ""
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("sqs: %w", err)
		}
		if group != "" && g != group {
			return fmt.Errorf("sqs: %w: Provision(%q, %q, %q): SQS has no fan-out, a queue is one group; use one topic per group, or SNS fan-out to one queue per group", mq.ErrNotSupported, topic, group, g)
		}
		group = g
	}
	q, err := b.queue(ctx, topic, true)
	if err != nil {
		return err
	}
	if group != "" {
		_, err = b.claimGroup(ctx, q, group, true)
	}
	return err
}
