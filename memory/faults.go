package memory

// InjectPublishErrors makes the next len(errs) Publish calls on this
// Broker fail, in order, with the given errors (wrapped), before storing
// anything. Use it to test how a service copes with a broker refusing
// messages.
func (b *Broker) InjectPublishErrors(errs ...error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, errs...)
	b.plain.Store(len(b.faults) == 0)
}

// injectedFault takes the next error queued by InjectPublishErrors, or
// returns nil if none is.
func (b *Broker) injectedFault() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.faults) == 0 {
		return nil
	}
	err := b.faults[0]
	b.faults = b.faults[1:]
	b.plain.Store(len(b.faults) == 0)
	return err
}

// Disconnect simulates this Broker losing its connection to the server
// and reconnecting at once: every message its subscriptions have taken
// and not yet settled goes back to its group, to be redelivered with a
// higher Attempt (possibly to another consumer while the first handler
// still runs), and those handlers' acknowledgements are lost. Subscribe
// calls keep running. Use it to check that handlers are idempotent.
// Each subscription reports Connected false, then true again, to
// mq.WatchState.
func (b *Broker) Disconnect() {
	b.mu.Lock()
	defer b.mu.Unlock()
	srv := b.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range b.live {
		s.cfg.SetConnected(false)
		defer s.cfg.SetConnected(true)
		for p, lease := range s.held {
			s.g.retry(p, lease, 0, true)
		}
		clear(s.held)
	}
}
