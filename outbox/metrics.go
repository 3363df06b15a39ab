package outbox

import (
	"context"
	"database/sql"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Instrument names of the lag gauges a Relay with
// RelayOptions.MeterProvider reports. Each relay observes the whole table,
// so relays sharing a table report the same values.
const (
	// MetricPending is the number of rows in the outbox table, due or not
	// (Int64ObservableGauge, "{message}").
	MetricPending = "mq.outbox.pending"
	// MetricOldestAge is the age of the oldest row in the outbox table, 0
	// when it is empty (Float64ObservableGauge, seconds). It grows while
	// the broker is down or a row keeps failing.
	MetricOldestAge = "mq.outbox.oldest_age"
)

func registerMetrics(mp metric.MeterProvider, db *sql.DB, d *Dialect) (metric.Registration, error) {
	m := mp.Meter("github.com/seedmq/mq/outbox")
	pending, err := m.Int64ObservableGauge(MetricPending, metric.WithUnit("{message}"),
		metric.WithDescription("Rows in the outbox table not yet published."))
	if err != nil {
		return nil, err
	}
	age, err := m.Float64ObservableGauge(MetricOldestAge, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest row in the outbox table."))
	if err != nil {
		return nil, err
	}
	q := d.q("SELECT COUNT(*), COALESCE(MIN(created_us), 0) FROM mq_outbox")
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var n, oldest int64
		if err := db.QueryRowContext(ctx, q).Scan(&n, &oldest); err != nil {
			return explain("lag metrics", d, err)
		}
		o.ObserveInt64(pending, n)
		a := 0.0
		if n > 0 {
			a = max(0, time.Since(time.UnixMicro(oldest)).Seconds())
		}
		o.ObserveFloat64(age, a)
		return nil
	}, pending, age)
}
