package app

// /metrics for relay operators (issue 18): counters in the Prometheus text
// format, on a loopback address of the operator's choice. Nothing in them
// names a mailbox, a peer or an envelope.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrMetricsAddr is returned by ServeMetrics for an address that is not a
// loopback host and port: metrics are for the operator's own scraper
// (put a reverse proxy or an SSH tunnel in front to read them remotely).
var ErrMetricsAddr = errors.New("the metrics address must be a loopback address and port, such as 127.0.0.1:9464")

// MetricsServer serves /metrics until Close.
type MetricsServer struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// Addr is the address the server listens on (with the port bound when
// the address asked for port 0).
func (m *MetricsServer) Addr() string { return m.addr }

// Close stops the server.
func (m *MetricsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	<-m.done
	return err
}

// ServeMetrics serves the relay's metrics at http://addr/metrics. addr
// must be a loopback host and port (ErrMetricsAddr).
func (r *Relay) ServeMetrics(addr string) (*MetricsServer, error) {
	if err := CheckMetricsAddr(addr); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(relayCollector{r})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &MetricsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		_ = m.srv.Serve(ln)
	}()
	return m, nil
}

// CheckMetricsAddr returns ErrMetricsAddr unless addr is a loopback IP
// address and port (a name is not resolved).
func CheckMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMetricsAddr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || port == "" {
		return fmt.Errorf("%w (got %q)", ErrMetricsAddr, addr)
	}
	return nil
}

// relayCollector reads the relay's counters at each scrape.
type relayCollector struct{ r *Relay }

var relayDescs = struct {
	deposits, fetches, fetched, deleted, bytes           *prometheus.Desc
	storedBytes, storedEnvelopes, quota, circuits, peers *prometheus.Desc
	streams, commits                                     *prometheus.Desc
	blobs, storedBlobBytes, blobQuota                    *prometheus.Desc
}{
	deposits:        prometheus.NewDesc("samizdat_relay_deposits_total", "Deposits answered, by result (stored, duplicate, refused).", []string{"result"}, nil),
	fetches:         prometheus.NewDesc("samizdat_relay_fetches_total", "Pages of envelopes listed to mailbox owners.", nil, nil),
	fetched:         prometheus.NewDesc("samizdat_relay_fetched_envelopes_total", "Envelopes sent to mailbox owners.", nil, nil),
	deleted:         prometheus.NewDesc("samizdat_relay_deleted_envelopes_total", "Envelopes deleted by mailbox owners.", nil, nil),
	bytes:           prometheus.NewDesc("samizdat_relay_mailbox_bytes_total", "Bytes of the mailbox protocol, by direction (received, sent).", []string{"direction"}, nil),
	storedBytes:     prometheus.NewDesc("samizdat_relay_stored_bytes", "Envelope bytes held now (expired ones until swept).", nil, nil),
	storedEnvelopes: prometheus.NewDesc("samizdat_relay_stored_envelopes", "Envelopes held now.", nil, nil),
	quota:           prometheus.NewDesc("samizdat_relay_quota_bytes", "The total storage quota in envelope bytes (0: no limit).", nil, nil),
	circuits:        prometheus.NewDesc("samizdat_relay_circuits", "Circuits (relayed connections) open now.", nil, nil),
	peers:           prometheus.NewDesc("samizdat_relay_peers", "Peers connected now.", nil, nil),
	streams:         prometheus.NewDesc("samizdat_relay_mailbox_streams", "Mailbox protocol streams open now.", nil, nil),
	commits:         prometheus.NewDesc("samizdat_relay_store_commits_total", "Transactions committed for deposits and deletes (several share one).", nil, nil),
	blobs:           prometheus.NewDesc("samizdat_relay_blobs_total", "File blobs deposited for offline owners, by result (stored, refused).", []string{"result"}, nil),
	storedBlobBytes: prometheus.NewDesc("samizdat_relay_stored_blob_bytes", "File blob bytes held now (expired ones until swept).", nil, nil),
	blobQuota:       prometheus.NewDesc("samizdat_relay_blob_quota_bytes", "The total storage quota in file blob bytes (0: no limit).", nil, nil),
}

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	if ms := c.r.Mailbox; ms != nil && ms.srv != nil {
		st := ms.srv.Stats()
		counter(relayDescs.deposits, st.Deposits, "stored")
		counter(relayDescs.deposits, st.DuplicateDeposits, "duplicate")
		counter(relayDescs.deposits, st.RefusedDeposits, "refused")
		counter(relayDescs.fetches, st.Fetches)
		counter(relayDescs.fetched, st.FetchedEnvelopes)
		counter(relayDescs.deleted, st.DeletedEnvelopes)
		counter(relayDescs.bytes, st.BytesReceived, "received")
		counter(relayDescs.bytes, st.BytesSent, "sent")
		gauge(relayDescs.streams, st.Streams)
		gauge(relayDescs.quota, ms.srv.TotalQuota())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if b, n, err := ms.st.TotalUsage(ctx); err == nil {
			gauge(relayDescs.storedBytes, b)
			gauge(relayDescs.storedEnvelopes, n)
		}
		cancel()
		counter(relayDescs.blobs, st.BlobsStored, "stored")
		counter(relayDescs.blobs, st.BlobsRefused, "refused")
		gauge(relayDescs.blobQuota, ms.srv.TotalBlobQuota())
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		if b, _, err := ms.st.BlobUsage(ctx, nil); err == nil {
			gauge(relayDescs.storedBlobBytes, b)
		}
		cancel()
		txs, _ := ms.st.GroupStats()
		counter(relayDescs.commits, txs)
	}
	if c.r.P2P != nil {
		peers, circuits := c.r.P2P.RelayStats()
		gauge(relayDescs.peers, int64(peers))
		gauge(relayDescs.circuits, int64(circuits))
	}
}
