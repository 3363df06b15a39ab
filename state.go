package mq

// SubscriptionState is how a running subscription stands with its
// broker, as its driver reports it to the function given with
// WatchState.
type SubscriptionState struct {
	// Connected is true while the subscription holds what it needs to
	// receive messages: a connection and a consumer (RabbitMQ), a group
	// membership (Kafka), a receive call that last succeeded (SQS), a
	// registration with the broker (memory). It is false before the first
	// connection, from the moment a driver notices a loss until it is
	// connected again, and once Subscribe has returned.
	Connected bool

	// Assigned is the number of partitions the subscription is assigned
	// on brokers with partitions (Kafka): set when a consumer group
	// generation starts (0 when the member got none: more members than
	// partitions) and 0 between generations (a rebalance). -1 before the
	// first assignment, and always on brokers without partitions.
	Assigned int

	// Stopped is true in the last report, sent when Subscribe returns.
	Stopped bool
}

// WatchState returns a SubscribeOption that makes the driver call f with
// the subscription's state each time it changes: first when Subscribe
// connects, then on every loss, reconnection and (Kafka) assignment, and
// last with Connected false when Subscribe returns. Calls for one
// subscription come one at a time and in order, from the driver's own
// goroutines: f must return quickly and must not call back into the
// subscription. middleware.Health.Track returns such an option for a
// readiness probe.
//
// A driver that does not report states never calls f; every driver of
// this module does.
func WatchState(f func(SubscriptionState)) SubscribeOption {
	return func(c *subscribeOptions) { c.state = f }
}
