package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/mailbox"
)

// mailboxFlags are the mailbox service's flags, shared by `relay` and
// `up --serve-mailbox`.
type mailboxFlags struct {
	quota, mailboxQuota string
	ttl                 time.Duration
	// File blobs for offline recipients (issue 16), apart from envelopes.
	blobQuota, mailboxBlobQuota string
	blobTTL                     time.Duration
	traceFile                   string
	trace                       *os.File
}

func (f *mailboxFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.quota, "quota", "1GiB", "mailbox storage in all, e.g. 1GiB, 512MiB or bytes")
	c.Flags().StringVar(&f.mailboxQuota, "mailbox-quota", "64MiB", "mailbox storage per mailbox, e.g. 64MiB or bytes")
	c.Flags().DurationVar(&f.ttl, "ttl", mailbox.DefaultTTL, "how long an envelope is kept unfetched")
	c.Flags().StringVar(&f.blobQuota, "blob-quota", "2GiB", "storage in all for the files of offline recipients (padded sealed chunks), apart from --quota")
	c.Flags().StringVar(&f.mailboxBlobQuota, "mailbox-blob-quota", "256MiB", "file storage per mailbox; a larger file waits at its sender")
	c.Flags().DurationVar(&f.blobTTL, "blob-ttl", mailbox.DefaultBlobTTL, "how long a file's chunks are kept unfetched")
	c.Flags().StringVar(&f.traceFile, "trace-file", "", "append every byte the mailbox service exchanges to this file (an audit of what this host sees)")
}

// closeTrace closes the --trace-file, if one was opened.
func (f *mailboxFlags) closeTrace() error {
	if f.trace == nil {
		return nil
	}
	return f.trace.Close()
}

func (f *mailboxFlags) options() (app.MailboxOptions, error) {
	total, err := parseSize(f.quota)
	if err != nil {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--quota: %w", err)}
	}
	per, err := parseSize(f.mailboxQuota)
	if err != nil {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--mailbox-quota: %w", err)}
	}
	if f.ttl <= 0 {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--ttl must be positive, e.g. 720h")}
	}
	btotal, err := parseSize(f.blobQuota)
	if err != nil {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--blob-quota: %w", err)}
	}
	bper, err := parseSize(f.mailboxBlobQuota)
	if err != nil {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--mailbox-blob-quota: %w", err)}
	}
	if f.blobTTL <= 0 {
		return app.MailboxOptions{}, usageError{fmt.Errorf("--blob-ttl must be positive, e.g. 168h")}
	}
	o := app.MailboxOptions{Quotas: mailbox.Quotas{PerMailbox: per, Total: total}, TTL: f.ttl,
		BlobQuotas: mailbox.Quotas{PerMailbox: bper, Total: btotal}, BlobTTL: f.blobTTL}
	if f.traceFile != "" {
		if f.trace, err = os.OpenFile(f.traceFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
			return app.MailboxOptions{}, fmt.Errorf("--trace-file: %w", err)
		}
		o.Trace = f.trace
	}
	return o, nil
}

// serveMailboxFlags adds --serve-mailbox to `up`.
type serveMailboxFlags struct {
	on bool
	mf mailboxFlags
}

// addServeMailboxFlag registers `up --serve-mailbox` and the mailbox
// service's flags on c.
func addServeMailboxFlag(c *cobra.Command, f *serveMailboxFlags) {
	c.Flags().BoolVar(&f.on, "serve-mailbox", false, "also host mailboxes for others (offline delivery), kept in mailbox.db in the profile")
	f.mf.add(c)
}

// apply sets o.ServeMailbox when --serve-mailbox is given (the node then
// starts the service before its API).
func (f *serveMailboxFlags) apply(o *app.Options) error {
	if !f.on {
		return nil
	}
	mo, err := f.mf.options()
	if err != nil {
		return err
	}
	o.ServeMailbox = &mo
	return nil
}

// close stops n (and its mailbox service), then closes the trace file.
func (f *serveMailboxFlags) close(n *app.Node) error {
	return errors.Join(n.Close(), f.mf.closeTrace())
}

func relayCmd(g *globals) *cobra.Command {
	var listen, bootstrap, via []string
	var logLevel, metrics string
	var dht bool
	var mf mailboxFlags
	var tf transportFlags
	c := &cobra.Command{
		Use:   "relay [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--via MULTIADDR]... [--dht=false] [--quota SIZE] [--mailbox-quota SIZE] [--ttl DURATION] [--blob-quota SIZE] [--mailbox-blob-quota SIZE] [--blob-ttl DURATION] [--trace-file FILE] [--metrics 127.0.0.1:PORT]",
		Short: "Run a volunteer relay: circuit relay and mailboxes for others (Ctrl-C stops it)",
		Long: "Run an always-on node that relays connections (circuit relay v2) for peers that cannot be\n" +
			"dialled directly and keeps encrypted envelopes for offline recipients. The profile\n" +
			"directory needs no init: it is created with the relay's key on first run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			mo, err := mf.options()
			if err != nil {
				return err
			}
			if metrics != "" {
				if err := app.CheckMetricsAddr(metrics); err != nil {
					return usageError{fmt.Errorf("--metrics: %w", err)}
				}
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var no app.Options
			if err := tf.apply(&no); err != nil {
				return err
			}
			r, err := app.StartRelay(ctx, app.RelayOptions{Dir: g.profile, Listen: listen, Mailbox: mo, Logger: log, EnableDHT: dht, Bootstrap: bootstrap, Via: via, Transports: no.Transports})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "samizdat relay is up: %s\n", r.PeerID())
			for _, a := range r.Addrs() {
				fmt.Fprintf(g.stdout, "listening: %s\n", a)
			}
			for _, b := range r.Bridges() {
				fmt.Fprintf(g.stdout, "bridge: %s\n", b)
			}
			var ms *app.MetricsServer
			if metrics != "" {
				if ms, err = r.ServeMetrics(metrics); err != nil {
					return errors.Join(fmt.Errorf("--metrics: %w", err), r.Close(), mf.closeTrace())
				}
				fmt.Fprintf(g.stdout, "metrics: http://%s/metrics\n", ms.Addr())
			}
			if len(via) > 0 {
				for _, a := range r.WaitVia(ctx, time.Minute) {
					fmt.Fprintf(g.stdout, "via: %s\n", a)
				}
			}
			<-ctx.Done()
			fmt.Fprintln(g.stdout, "shutting down")
			var merr error
			if ms != nil {
				merr = ms.Close() // before the relay it reads
			}
			return errors.Join(merr, r.Close(), mf.closeTrace())
		},
	}
	c.Flags().StringArrayVar(&listen, "listen", nil, "multiaddr to listen on (repeatable; default: loopback TCP and QUIC, the ports of the last run)")
	addServeTransportFlags(c, &tf)
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	c.Flags().StringArrayVar(&bootstrap, "bootstrap", nil, "a peer to join the network through, as a full multiaddr (repeatable)")
	c.Flags().StringArrayVar(&via, "via", nil, "another relay, as a full multiaddr, on which this one keeps a circuit slot: users who name this host by the relayed address reach its mailboxes without it seeing their addresses (repeatable)")
	c.Flags().StringVar(&metrics, "metrics", "", "serve Prometheus metrics (counts only, no ids) at http://ADDR/metrics; ADDR must be a loopback host:port, e.g. 127.0.0.1:9464")
	c.Flags().BoolVar(&dht, "dht", true, "run the samizdat DHT and announce the mailbox service in it, so users without configured hosts find this relay")
	mf.add(c)
	return c
}

// sizeUnits are the suffixes parseSize knows, longest first.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize parses a byte size: plain bytes ("1000000"), or a number with
// a binary (KiB, MiB, GiB, TiB; K, M, G, T) or decimal (KB, MB, GB, TB)
// unit, case-insensitive ("1GiB", "1.5gib", "512 MiB").
func parseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	num, mult := strings.ToLower(in), 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	bad := fmt.Errorf("%q is not a size: give bytes or a number with a unit, e.g. 1GiB, 512MiB, 1000000", s)
	if num == "" || strings.ContainsAny(num, "+-eEx_") {
		return 0, bad
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, bad
	}
	bytes := v * mult
	if bytes < 1 {
		return 0, fmt.Errorf("%q: the size must be at least 1 byte", s)
	}
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: the size is too large", s)
	}
	return int64(bytes), nil
}
