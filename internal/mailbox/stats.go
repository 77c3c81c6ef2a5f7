package mailbox

import (
	"io"
	"sync/atomic"
)

// Stats are a Server's counters since it started, for an operator's
// metrics. They hold no mailbox, peer or envelope ids.
type Stats struct {
	Deposits          int64 // envelopes stored
	DuplicateDeposits int64 // deposits of an envelope held already
	RefusedDeposits   int64 // deposits refused: quota, size, rate, storage errors
	Fetches           int64 // pages listed to owners
	FetchedEnvelopes  int64 // envelopes in those pages
	DeletedEnvelopes  int64 // envelopes deleted by their owners
	BytesReceived     int64 // bytes read from streams (after transport decryption)
	BytesSent         int64 // bytes written to streams
	Streams           int64 // streams open now
	BlobsStored       int64 // file blobs stored (issue 16)
	BlobsRefused      int64 // file blobs refused: quota, rate, storage errors
}

// stats is the live form of Stats.
type stats struct {
	deposits, duplicates, refused atomic.Int64
	fetches, fetched, deleted     atomic.Int64
	bytesIn, bytesOut, streams    atomic.Int64
	blobs, blobsRefused           atomic.Int64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Deposits: c.deposits.Load(), DuplicateDeposits: c.duplicates.Load(), RefusedDeposits: c.refused.Load(),
		Fetches: c.fetches.Load(), FetchedEnvelopes: c.fetched.Load(), DeletedEnvelopes: c.deleted.Load(),
		BytesReceived: c.bytesIn.Load(), BytesSent: c.bytesOut.Load(), Streams: c.streams.Load(),
		BlobsStored: c.blobs.Load(), BlobsRefused: c.blobsRefused.Load(),
	}
}

// countingReader and countingWriter add what passes through to a counter.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TotalQuota is the server's total storage quota in envelope bytes (0: no
// limit).
func (s *Server) TotalQuota() int64 { return s.quota.Total }

// TotalBlobQuota is the blob storage quota in bytes (0: no limit).
func (s *Server) TotalBlobQuota() int64 { return s.blobQuota.Total }
