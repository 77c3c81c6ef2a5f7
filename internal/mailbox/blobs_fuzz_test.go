package mailbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// bytesStream is a p2p.Stream reading a fixed input and discarding what
// is written.
type bytesStream struct{ r io.Reader }

func (s bytesStream) Read(b []byte) (int, error) { return s.r.Read(b) }
func (bytesStream) Write(b []byte) (int, error)  { return len(b), nil }
func (bytesStream) Close() error                 { return nil }
func (bytesStream) CloseWrite() error            { return nil }
func (bytesStream) Reset() error                 { return nil }
func (bytesStream) SetDeadline(time.Time) error  { return nil }
func (bytesStream) RemotePeer() string           { return "12D3KooWfuzz" }

// FuzzBlobRequests feeds arbitrary bytes to the blob service: it must
// end (an error or the end of input) without panicking, and never store
// a blob that is not exactly BlobSize bytes.
func FuzzBlobRequests(f *testing.F) {
	mb := bytes.Repeat([]byte{1}, IDSize)
	id := bytes.Repeat([]byte{2}, HashSize)
	req := func(op byte, rest ...[]byte) []byte {
		b := append([]byte{op}, mb...)
		for _, r := range rest {
			b = append(b, r...)
		}
		return b
	}
	one := binary.BigEndian.AppendUint16(nil, 1)
	f.Add(req(opBlobHave, one, id))
	f.Add(req(opBlobRoom, []byte{0, 0, 0, 9}))
	f.Add(req(opBlobPut, one, id, make([]byte, 100)))
	f.Add(req(opBlobGet, id))
	f.Add(req(opBlobDelete, one, id))
	f.Add(req(9))
	f.Add(req(opBlobHave, []byte{0xff, 0xff}))
	st, err := store.OpenMailboxStore(filepath.Join(f.TempDir(), "mb.db"), testDBKey)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	srv := NewServer(ServerConfig{Store: st, SweepInterval: -1})
	defer srv.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		s := bytesStream{bytes.NewReader(in)}
		_ = srv.serveBlobs(s, bufio.NewReader(s), bufio.NewWriter(io.Discard))
		b, n, err := st.BlobUsage(t.Context(), nil)
		if err != nil || b != n*BlobSize {
			t.Fatalf("%d blobs of %d bytes in all (%v)", n, b, err)
		}
	})
}
