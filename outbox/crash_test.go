package outbox_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/outbox"
)

// Environment of the relay child process of TestRelaySIGKILLed.
const (
	crashChildEnv   = "MQ_OUTBOX_CRASH_CHILD" // "1" in the child
	crashDriverEnv  = "MQ_OUTBOX_CRASH_DRIVER"
	crashDSNEnv     = "MQ_OUTBOX_CRASH_DSN"
	crashDialectEnv = "MQ_OUTBOX_CRASH_DIALECT"
	crashAfterEnv   = "MQ_OUTBOX_CRASH_AFTER" // Publish calls before the one that blocks
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) == "1" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild is the relay process TestRelaySIGKILLed kills. It relays the
// outbox to an in-process broker through a publisher that prints "acked
// <id>" for every message the broker accepted, and on the Publish call
// after MQ_OUTBOX_CRASH_AFTER calls prints "blocked" once the broker has
// accepted the batch and blocks before returning: the relay is stopped
// between the broker's ack and the delete, where the parent kills it.
func crashChild() int {
	db, err := sql.Open(os.Getenv(crashDriverEnv), os.Getenv(crashDSNEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d := outbox.SQLite
	if os.Getenv(crashDialectEnv) == "postgres" {
		d = outbox.Postgres
	}
	after, _ := strconv.Atoi(os.Getenv(crashAfterEnv))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	calls := 0
	pub := &recorder{inner: b, after: func(_ string, msgs []*mq.Message) error {
		w := bufio.NewWriter(os.Stdout)
		for _, m := range msgs {
			fmt.Fprintln(w, "acked", m.ID)
		}
		calls++
		if calls > after {
			fmt.Fprintln(w, "blocked")
			w.Flush()
			time.Sleep(time.Minute) // until SIGKILL
			return errors.New("not killed")
		}
		return w.Flush()
	}}
	r := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: pub, BatchSize: 4, Lease: time.Second, PollInterval: 10 * time.Millisecond})
	err = r.Run(ctx)
	fmt.Fprintln(os.Stderr, "relay child was not killed:", err)
	return 3
}

// A relay process SIGKILLed after the broker accepted a batch and before
// it deleted the rows loses nothing: another relay publishes those rows
// again (duplicates, with the same IDs) once their lease ends, and every
// key's messages are first published in order.
func TestRelaySIGKILLed(t *testing.T) {
	for _, c := range databases() {
		t.Run(c.name, func(t *testing.T) {
			db, driver, dsn := c.open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := outbox.Migrate(ctx, db, c.d); err != nil {
				t.Fatal(err)
			}
			const n, keys = 30, 3
			for i := range n {
				write(t, db, c.d, "t", &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%keys)})
			}

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashDriverEnv+"="+driver, crashDSNEnv+"="+dsn,
				crashDialectEnv+"="+c.d.String(), crashAfterEnv+"=3")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			var acked []string // in the order the child's broker accepted them
			blocked := false
			timeout := time.After(30 * time.Second)
			for !blocked {
				select {
				case l, ok := <-lines:
					if !ok {
						cmd.Wait()
						t.Fatalf("relay child ended before it blocked; stderr:\n%s", stderr.String())
					}
					switch {
					case l == "blocked":
						blocked = true
					case strings.HasPrefix(l, "acked "):
						acked = append(acked, strings.TrimPrefix(l, "acked "))
					}
				case <-timeout:
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("relay child did not block within 30s; acked %v; stderr:\n%s", acked, stderr.String())
				}
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			for range lines {
			}
			err = cmd.Wait()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("relay child: got %v, want killed by SIGKILL; stderr:\n%s", err, stderr.String())
			}

			// The blocked call's messages were accepted by the broker and
			// are still in the table: the crash came between ack and delete.
			left := map[string]bool{}
			rs, err := db.QueryContext(ctx, "SELECT id FROM mq_outbox")
			if err != nil {
				t.Fatal(err)
			}
			for rs.Next() {
				var id string
				if err := rs.Scan(&id); err != nil {
					t.Fatal(err)
				}
				left[id] = true
			}
			rs.Close()
			ackedLeft := 0
			for _, id := range acked {
				if left[id] {
					ackedLeft++
				}
			}
			if ackedLeft == 0 || len(left) == n {
				t.Fatalf("after SIGKILL: %d of %d acked messages left in the table, %d rows left; want some acked rows kept and some deleted", ackedLeft, len(acked), len(left))
			}

			// Another relay takes over once the dead relay's lease ends.
			b := newMemoryBroker(t)
			defer b.Close(context.Background())
			rec := &recorder{inner: b}
			rctx, stop := context.WithTimeout(ctx, 20*time.Second)
			defer stop()
			go outbox.NewRelay(db, c.d, outbox.RelayOptions{Publisher: rec, BatchSize: 4, Lease: time.Second, PollInterval: 10 * time.Millisecond}).Run(rctx)
			waitFor(t, 15*time.Second, "outbox drained by the second relay", func() bool { return pending(t, db) == 0 })
			stop()

			again := rec.snapshot()
			sentAgain := map[string]int{}
			for _, m := range again {
				sentAgain[m.ID]++
			}
			for id := range left {
				if sentAgain[id] == 0 {
					t.Errorf("row %s left by the dead relay was not published by the second", id)
				}
			}
			dups := 0
			for _, id := range acked {
				if sentAgain[id] > 0 {
					dups++
				}
			}
			if dups != ackedLeft {
				t.Errorf("got %d acked messages published again, want the %d whose rows the crash kept", dups, ackedLeft)
			}
			// Everything, in key order, counting each message's first
			// publication across both relays.
			var all []*mq.Message
			for _, id := range acked {
				var i int
				fmt.Sscanf(id, "m%d", &i)
				all = append(all, &mq.Message{ID: id, Key: fmt.Sprint("k", i%keys)})
			}
			all = append(all, again...)
			checkKeyOrder(t, all, n, keys)
			t.Logf("child relay: %d messages acked before SIGKILL, %d of them still in the table; second relay: %d published", len(acked), ackedLeft, len(again))
		})
	}
}
