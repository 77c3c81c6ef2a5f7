package acceptq

import (
	"errors"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// testConn is a loopback TCP connection that records its scope and
// whether it was closed.
type testConn struct {
	manet.Conn
	scope  network.ConnManagementScope
	closed bool
}

func (c *testConn) SetScope(s network.ConnManagementScope) { c.scope = s }
func (c *testConn) Close() error                           { c.closed = true; return c.Conn.Close() }

func loopConn(t *testing.T) *testConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	mc, err := manet.WrapNetConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Close() })
	return &testConn{Conn: mc}
}

type gater bool

func (g gater) InterceptAccept(network.ConnMultiaddrs) bool { return bool(g) }

func TestAdmitAccept(t *testing.T) {
	closed := make(chan struct{})
	q := New(gater(true), &network.NullResourceManager{}, true, closed)
	c := loopConn(t)
	go q.Admit(c)
	got, scope, err := q.Accept()
	if err != nil || got != c || scope == nil || c.scope != scope || c.closed {
		t.Fatalf("accept: %v %v %v (conn scope %v, closed %v)", got, scope, err, c.scope, c.closed)
	}

	// Refused by the gater: closed, never accepted.
	q = New(gater(false), &network.NullResourceManager{}, true, closed)
	c = loopConn(t)
	q.Admit(c)
	if !c.closed || c.scope != nil {
		t.Fatalf("a conn the gater refused: closed %v, scope %v", c.closed, c.scope)
	}

	// Refused by the resource manager: closed.
	q = New(nil, &refusingRM{}, true, closed)
	c = loopConn(t)
	q.Admit(c)
	if !c.closed || c.scope != nil {
		t.Fatalf("a conn the resource manager refused: closed %v, scope %v", c.closed, c.scope)
	}

	// The listener closes: a waiting conn is closed, Accept says so.
	q = New(nil, &network.NullResourceManager{}, true, closed)
	c = loopConn(t)
	close(closed)
	q.Admit(c)
	if !c.closed {
		t.Fatal("a conn admitted after the listener closed was left open")
	}
	if _, _, err := q.Accept(); !errors.Is(err, transport.ErrListenerClosed) {
		t.Fatalf("accept on a closed listener: %v", err)
	}
}

// refusingRM refuses every connection, as a resource manager over its
// limits does.
type refusingRM struct{ network.NullResourceManager }

func (*refusingRM) OpenConnection(network.Direction, bool, ma.Multiaddr) (network.ConnManagementScope, error) {
	return nil, errors.New("over limit")
}

// Named listeners and conns report the transport's name.
func TestNamed(t *testing.T) {
	c := NamedConn(stateConn{}, "websocket")
	if got := c.ConnState().Transport; got != "websocket" {
		t.Fatalf("transport %q", got)
	}
}

type stateConn struct{ transport.CapableConn }

func (stateConn) ConnState() network.ConnectionState {
	return network.ConnectionState{Transport: "tcp", Security: "noise"}
}
