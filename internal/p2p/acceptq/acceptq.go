// Package acceptq is the accept side shared by samizdat's own libp2p
// transports (wss, webrtcpt): a connection the transport has accepted
// passes the connection gater and the resource manager, then waits for
// the upgrader's Accept; and the upgraded listener names the transport in
// each connection's state.
package acceptq

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Gater is the part of libp2p's connection gater consulted on accept.
type Gater interface {
	InterceptAccept(network.ConnMultiaddrs) bool
}

// Conn is an accepted connection that ends its resource scope (given by
// SetScope) when it closes.
type Conn interface {
	manet.Conn
	SetScope(network.ConnManagementScope)
}

type item struct {
	c     manet.Conn
	scope network.ConnManagementScope
}

// Queue hands admitted connections to Accept.
type Queue struct {
	gater  Gater
	rcmgr  network.ResourceManager
	usefd  bool
	closed <-chan struct{}
	ch     chan item
}

// New returns a queue that consults g (nil: admit all) and rm (usefd as
// for rm.OpenConnection) and gives up once closed is closed.
func New(g Gater, rm network.ResourceManager, usefd bool, closed <-chan struct{}) *Queue {
	return &Queue{gater: g, rcmgr: rm, usefd: usefd, closed: closed, ch: make(chan item)}
}

// Admit runs c past the gater and the resource manager and blocks until
// Accept takes it. It closes c when either refuses it or the listener
// closes first.
func (q *Queue) Admit(c Conn) {
	if q.gater != nil && !q.gater.InterceptAccept(c) {
		c.Close()
		return
	}
	scope, err := q.rcmgr.OpenConnection(network.DirInbound, q.usefd, c.RemoteMultiaddr())
	if err != nil {
		c.Close()
		return
	}
	c.SetScope(scope)
	select {
	case q.ch <- item{c, scope}:
	case <-q.closed:
		c.Close()
	}
}

// Accept returns the next admitted connection and its scope, or
// transport.ErrListenerClosed once the listener is closed.
func (q *Queue) Accept() (manet.Conn, network.ConnManagementScope, error) {
	select {
	case it := <-q.ch:
		return it.c, it.scope, nil
	case <-q.closed:
		return nil, nil, transport.ErrListenerClosed
	}
}

// Named wraps an upgraded listener so that the connections it accepts
// report name as their transport.
func Named(l transport.Listener, name string) transport.Listener {
	return &namedListener{l, name}
}

type namedListener struct {
	transport.Listener
	name string
}

func (l *namedListener) Accept() (transport.CapableConn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NamedConn(c, l.name), nil
}

type namedConn struct {
	transport.CapableConn
	name string
}

func (c *namedConn) ConnState() network.ConnectionState {
	cs := c.CapableConn.ConnState()
	cs.Transport = c.name
	return cs
}

// NamedConn wraps a dialed connection so that it reports name as its
// transport.
func NamedConn(c transport.CapableConn, name string) transport.CapableConn {
	return &namedConn{c, name}
}
