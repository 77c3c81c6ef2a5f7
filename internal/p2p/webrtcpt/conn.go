package webrtcpt

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// chunk is the largest data-channel message written: well under every
// implementation's limit, and small enough that a big write does not
// hold the association for long.
const chunk = 16 << 10

// SetScope gives c the resource scope it ends when it closes.
func (c *conn) SetScope(s network.ConnManagementScope) { c.scope = s }

// readBuf holds one whole message (a short buffer would fail the read).
const readBuf = 64 << 10

// conn is a net.Conn over a detached data channel, as a byte stream:
// writes are cut into messages, reads join them.
type conn struct {
	pc           *webrtc.PeerConnection
	rwc          datachannel.ReadWriteCloserDeadliner
	laddr, raddr ma.Multiaddr
	lna, rna     net.Addr
	scope        network.ConnManagementScope

	rmu     sync.Mutex
	buf     []byte
	pending []byte
	wmu     sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

var _ manet.Conn = (*conn)(nil)

func newConn(pc *webrtc.PeerConnection, rwc datachannel.ReadWriteCloserDeadliner) (*conn, error) {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return nil, errors.New("webrtc: no transport")
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return nil, errors.New("webrtc: no selected candidate pair")
	}
	c := &conn{pc: pc, rwc: rwc, buf: make([]byte, readBuf)}
	c.lna = &net.UDPAddr{IP: net.ParseIP(pair.Local.Address), Port: int(pair.Local.Port)}
	c.rna = &net.UDPAddr{IP: net.ParseIP(pair.Remote.Address), Port: int(pair.Remote.Port)}
	if c.laddr, err = toMultiaddr(c.lna); err != nil {
		return nil, err
	}
	if c.raddr, err = toMultiaddr(c.rna); err != nil {
		return nil, err
	}
	return c, nil
}

func toMultiaddr(a net.Addr) (ma.Multiaddr, error) {
	m, err := manet.FromNetAddr(a)
	if err != nil {
		return nil, err
	}
	return m.Encapsulate(ma.StringCast("/webrtc")), nil
}

func (c *conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.pending) == 0 {
		n, err := c.rwc.Read(c.buf)
		if err != nil {
			return 0, err
		}
		c.pending = c.buf[:n]
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(b) > 0 {
		n := min(len(b), chunk)
		if _, err := c.rwc.Write(b[:n]); err != nil {
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		// A write blocked on a full association waits for room or its
		// deadline, never for the close (pion's SCTP): end it first.
		_ = c.rwc.SetWriteDeadline(time.Now())
		_ = c.rwc.SetReadDeadline(time.Now())
		c.closeErr = errors.Join(c.rwc.Close(), closePC(c.pc))
		if c.scope != nil {
			c.scope.Done() // idempotent; the upgrader may have ended it
		}
	})
	return c.closeErr
}

func (c *conn) LocalAddr() net.Addr                { return c.lna }
func (c *conn) RemoteAddr() net.Addr               { return c.rna }
func (c *conn) LocalMultiaddr() ma.Multiaddr       { return c.laddr }
func (c *conn) RemoteMultiaddr() ma.Multiaddr      { return c.raddr }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.rwc.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.rwc.SetWriteDeadline(t) }

func (c *conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// closePC closes a peer connection, its DTLS transport first: pion's
// PeerConnection.Close aborts the SCTP association and waits for its read
// loop, which may sit in a DTLS read forever (seen when both ends close at
// once); a closed DTLS connection ends that read.
func closePC(pc *webrtc.PeerConnection) error {
	if s := pc.SCTP(); s != nil {
		if d := s.Transport(); d != nil {
			_ = d.Stop()
		}
	}
	return pc.Close()
}
