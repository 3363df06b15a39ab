package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka"
	_ "github.com/seedmq/mq/memory"
	_ "github.com/seedmq/mq/rabbitmq"
	_ "github.com/seedmq/mq/sqs"
)

// Exit codes, documented in the package doc and in every --help.
const (
	exitOK          = 0   // done
	exitFailed      = 1   // the operation failed (broker error, conformance failures)
	exitUsage       = 2   // bad command line or URL
	exitUnsupported = 3   // the broker cannot do this (mq.ErrNotSupported)
	exitNotFound    = 4   // topic, group or queue does not exist (mq.ErrNotFound)
	exitAbove       = 5   // lag --max: the backlog is above the threshold
	exitInterrupted = 130 // stopped by Ctrl-C or SIGTERM before finishing
)

const exitCodesHelp = `exit codes:
  0    done (tail and lag --watch: also when stopped with Ctrl-C)
  1    failed: broker error, messages not accepted, conformance failures
  2    usage: bad flags, arguments or URL
  3    not supported by this broker (mq.ErrNotSupported)
  4    not found: topic, group or queue does not exist (mq.ErrNotFound)
  5    lag --max: the backlog is above the threshold
  130  interrupted by Ctrl-C or SIGTERM before the work was done`

// command is one subcommand of mq.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	run     func(c *cli, args []string) error
	hidden  bool
}

var commands []*command

func init() {
	commands = []*command{
		publishCmd, tailCmd, lagCmd, pingCmd, provisionCmd, redriveCmd, replayCmd, conformCmd, conformChildCmd,
	}
}

// cli is what a command works with.
type cli struct {
	cmd    *command
	ctx    context.Context // canceled on Ctrl-C or SIGTERM
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	tty    bool   // stderr is a terminal: progress may rewrite its line
	usage  func() // prints the command's --help
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr)}
	if len(args) == 0 {
		usage(c.stderr)
		return exitUsage
	}
	name := args[0]
	if strings.HasPrefix(name, "-test.") && os.Getenv(envConformURL) != "" {
		// The conformance suite re-executes its own program with -test
		// flags only (the consumer-crash case's subprocess): this is
		// that program when it runs under mq conform.
		return run(append([]string{conformChildCmd.name}, args...))
	}
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"})
		}
		usage(c.stdout)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == name {
			c.cmd = cmd
			if cmd.hidden {
				// The conformance child: the parent stops it with
				// SIGINT, which must end it at once.
				c.ctx = context.Background()
				return c.exit(cmd.run(c, args[1:]))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// A second Ctrl-C kills at once: the first one restores
			// the default handling once it has canceled ctx.
			go func() { <-ctx.Done(); stop() }()
			c.ctx = ctx
			return c.exit(cmd.run(c, args[1:]))
		}
	}
	fmt.Fprintf(c.stderr, "mq: unknown command %q\n\n", name)
	usage(c.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "mq looks at a message broker through the URL a service uses.\n\nusage: mq COMMAND [flags] URL ARGS...\n\ncommands:\n")
	for _, cmd := range commands {
		if !cmd.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
		}
	}
	fmt.Fprintf(w, `
URL is a broker URL (%s), or env:NAME to read it from the environment
variable NAME, which keeps a password out of the process list and shell
history. URLs are printed with their user info replaced by ***.

Run mq COMMAND --help for a command's flags.

%s
`, strings.Join(schemeExamples(), ", "), exitCodesHelp)
}

func schemeExamples() []string {
	s := mq.Schemes()
	sort.Strings(s)
	for i, v := range s {
		s[i] = v + "://"
	}
	return s
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError ends a command with a code of its own and, when msg is not
// empty, a message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exit prints err, if any, and returns the exit code for it.
func (c *cli) exit(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	name := "mq " + c.cmd.name
	var ue *usageError
	var ee *exitError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "%s: %s\nRun mq %s --help for usage.\n", name, scrub(ue.msg), c.cmd.name)
		return exitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(c.stderr, "%s: %s\n", name, scrub(ee.msg))
		}
		return ee.code
	case c.ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(c.stderr, "%s: interrupted\n", name)
		return exitInterrupted
	}
	// Drivers keep passwords out of their errors; scrub removes the
	// user name too, and anything a driver may have missed.
	fmt.Fprintf(c.stderr, "%s: %s\n", name, scrub(err.Error()))
	switch {
	case errors.Is(err, mq.ErrInvalidURL), errors.Is(err, mq.ErrInvalidOption):
		return exitUsage
	case errors.Is(err, mq.ErrNotSupported):
		return exitUnsupported
	case errors.Is(err, mq.ErrNotFound):
		return exitNotFound
	case c.ctx.Err() != nil:
		return exitInterrupted
	}
	return exitFailed
}

// isTerminal reports whether f is a character device, such as a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
