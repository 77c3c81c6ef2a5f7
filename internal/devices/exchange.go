package devices

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// ProtocolLink is the stream protocol of linking.
const ProtocolLink = "/samizdat/link/1"

const (
	transcriptLabel = "samizdat/link/v1"
	keysLabel       = "samizdat/link/v1 keys"
	maxBadAttempts  = 3
)

// Errors of the link exchange.
var (
	// ErrLinkAuth is returned when the other side does not prove it holds
	// the link's secret (new device) or its ephemeral key (existing
	// device): a tampered or guessed link, or someone else's stream.
	ErrLinkAuth = errors.New("link exchange not authenticated (wrong or tampered link code)")
	// ErrLinkUsed is returned by Answer for a link code already used (or
	// burnt by failed attempts): show a new one.
	ErrLinkUsed = errors.New("this link code was already used: show a new one (samizdat link)")
	// ErrLinkRefused is returned when the other side broke off (its user
	// did not confirm the codes, or the new device belongs to another
	// account).
	ErrLinkRefused = errors.New("linking was refused by the other device")
	// ErrLinkCodeRefused is returned by Begin (and Service.Start) when the
	// new device breaks off at once: it does not take this code (used
	// already, burnt by bad attempts, or not the code it shows). It
	// matches ErrLinkRefused.
	ErrLinkCodeRefused = fmt.Errorf("%w: it does not take this link code (already used, or altered): show a new one there (samizdat link)", ErrLinkRefused)
	// ErrWrongDevice is returned when the new device certifies another key
	// or account than the link names.
	ErrWrongDevice = errors.New("the new device certified another key or account than the link names")
	// ErrBadDeviceList is returned to the new device when the device list
	// it is given is not certified for the account it was given, or does
	// not list it.
	ErrBadDeviceList = errors.New("the other device sent a device list that is not this account's")
)

// Session is one side of a link exchange after the keys are agreed.
type Session struct {
	rw        io.ReadWriter
	send, rcv cipher.AEAD
	nSend     uint64
	nRcv      uint64
	code      string
	link      *Link
}

// Code is the short code both sides show ("123 456"): equal codes mean
// both hold the same keys (no one in the middle).
func (s *Session) Code() string { return s.code }

func transcript(l *Link, existingEph []byte, existingPeer string) []byte {
	h := sha256.New()
	h.Write([]byte(transcriptLabel))
	h.Write(l.DeviceKey)
	h.Write(l.Ephemeral.Bytes())
	h.Write(existingEph)
	h.Write([]byte(existingPeer))
	return h.Sum(nil)
}

func mac(key []byte, label string, th []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(th)
	return m.Sum(nil)
}

// derive returns the keys (existing→new, new→existing), the reply key and
// the short code.
func derive(shared, secret, th []byte) (toNew, toExisting, confirm []byte, code string, err error) {
	out, err := hkdf.Key(sha256.New, shared, secret, keysLabel+string(th), 3*32+8)
	if err != nil {
		return nil, nil, nil, "", err
	}
	n := binary.BigEndian.Uint64(out[96:]) % 1_000_000
	return out[:32], out[32:64], out[64:96], fmt.Sprintf("%03d %03d", n/1000, n%1000), nil
}

func newSession(rw io.ReadWriter, sendKey, rcvKey []byte, code string, l *Link) (*Session, error) {
	s, err := chacha20poly1305.New(sendKey)
	if err != nil {
		return nil, err
	}
	r, err := chacha20poly1305.New(rcvKey)
	if err != nil {
		return nil, err
	}
	return &Session{rw: rw, send: s, rcv: r, code: code, link: l}, nil
}

// Begin runs the existing device's first step on a stream to the new
// device: it proves knowledge of the link's secret and checks that the
// other end holds the link's ephemeral key. selfPeer is this device's peer
// id (the new device sees it as the stream's remote peer).
func Begin(rnd io.Reader, rw io.ReadWriter, l *Link, selfPeer string) (*Session, error) {
	eph, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	th := transcript(l, eph.PublicKey().Bytes(), selfPeer)
	hello := &wirepb.LinkHello{Version: wire.Version, Ephemeral: eph.PublicKey().Bytes(), Mac: mac(l.Secret, "hello", th)}
	if err := wire.WriteFrame(rw, wire.Marshal(hello)); isStreamEnd(err) {
		return nil, ErrLinkCodeRefused
	} else if err != nil {
		return nil, err
	}
	var reply wirepb.LinkReply
	if err := readLink(rw, &reply); errors.Is(err, ErrLinkRefused) {
		// The new device refuses a code it does not take by closing or
		// resetting the stream: it says nothing that would help a guesser.
		return nil, ErrLinkCodeRefused
	} else if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(l.Ephemeral)
	if err != nil {
		return nil, ErrLinkAuth
	}
	toNew, toExisting, confirm, code, err := derive(shared, l.Secret, th)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(reply.Mac, mac(confirm, "reply", th)) {
		return nil, ErrLinkAuth
	}
	return newSession(rw, toNew, toExisting, code, l)
}

// Answer runs the new device's first step on a stream from remotePeer: it
// checks the existing device's proof of the secret and answers with its
// own. A link code answers once; after maxBadAttempts failed proofs it is
// burnt.
func (p *PendingLink) Answer(rw io.ReadWriter, remotePeer string) (*Session, error) {
	var hello wirepb.LinkHello
	if err := readLink(rw, &hello); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used || p.bad >= maxBadAttempts {
		return nil, ErrLinkUsed
	}
	th := transcript(&p.Link, hello.Ephemeral, remotePeer)
	if !hmac.Equal(hello.Mac, mac(p.Secret, "hello", th)) {
		p.bad++
		return nil, ErrLinkAuth
	}
	pub, err := ecdh.X25519().NewPublicKey(hello.Ephemeral)
	if err != nil {
		p.bad++
		return nil, ErrLinkAuth
	}
	shared, err := p.eph.ECDH(pub)
	if err != nil {
		p.bad++
		return nil, ErrLinkAuth
	}
	p.used = true
	toNew, toExisting, confirm, code, err := derive(shared, p.Secret, th)
	if err != nil {
		return nil, err
	}
	if err := wire.WriteFrame(rw, wire.Marshal(&wirepb.LinkReply{Version: wire.Version, Mac: mac(confirm, "reply", th)})); err != nil {
		return nil, err
	}
	return newSession(rw, toExisting, toNew, code, &p.Link)
}

func readLink(r io.Reader, m interface {
	protoMessage
	GetVersion() uint32
}) error {
	b, err := wire.ReadFrame(r)
	if err != nil {
		if isStreamEnd(err) {
			return ErrLinkRefused
		}
		return err
	}
	return wire.ParseLink(b, m)
}

// isStreamEnd reports whether err is the other end resetting or closing
// the stream.
func isStreamEnd(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		p2p.IsReset(err))
}

func nonce(n uint64) []byte {
	b := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(b[4:], n)
	return b
}

// seal writes one sealed frame.
func (s *Session) seal(m protoMessage) error {
	ct := s.send.Seal(nil, nonce(s.nSend), wire.Marshal(m), nil)
	s.nSend++
	err := wire.WriteFrame(s.rw, wire.Marshal(&wirepb.LinkBox{Version: wire.Version, Ciphertext: ct}))
	if isStreamEnd(err) {
		return ErrLinkRefused // the other side broke off
	}
	return err
}

// open reads one sealed frame into m.
func (s *Session) open(m interface {
	protoMessage
	GetVersion() uint32
}) error {
	var box wirepb.LinkBox
	if err := readLink(s.rw, &box); err != nil {
		return err
	}
	pt, err := s.rcv.Open(nil, nonce(s.nRcv), box.Ciphertext, nil)
	if err != nil {
		return ErrLinkAuth
	}
	s.nRcv++
	return wire.ParseLink(pt, m)
}

// Provision (existing device, after its user confirmed the code) sends the
// account to the new device and returns the device entry the new device
// certified for it, checked against the link.
func (s *Session) Provision(p *wirepb.LinkProvision, account keys.PublicIdentity) (identity.Device, error) {
	p.Version = wire.Version
	if err := s.seal(p); err != nil {
		return identity.Device{}, err
	}
	var acc wirepb.LinkAccept
	if err := s.open(&acc); err != nil {
		return identity.Device{}, err
	}
	d, err := identity.DeviceFromWire(account, acc.Device)
	if err != nil {
		return identity.Device{}, fmt.Errorf("%w: %w", ErrWrongDevice, err)
	}
	if !bytes.Equal(d.Key, s.link.DeviceKey) {
		return identity.Device{}, ErrWrongDevice
	}
	return d, nil
}

// Finish (existing device) sends the device list with the new device.
func (s *Session) Finish(version uint64, devs []identity.Device) error {
	done := &wirepb.LinkDone{Version: wire.Version, DeviceVersion: version}
	for _, d := range devs {
		done.Devices = append(done.Devices, identity.DeviceToWire(d))
	}
	return s.seal(done)
}

// Receive (new device) reads the account the existing device sends.
func (s *Session) Receive() (*keys.Identity, *wirepb.LinkProvision, error) {
	var p wirepb.LinkProvision
	if err := s.open(&p); err != nil {
		return nil, nil, err
	}
	id, err := keys.UnmarshalIdentity(p.Identity)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrLinkAuth, err)
	}
	return id, &p, nil
}

// Accept (new device, after its user confirmed the code) sends its
// certificate and reads the device list it was added to.
func (s *Session) Accept(account keys.PublicIdentity, dev identity.Device) (uint64, []identity.Device, error) {
	if err := s.seal(&wirepb.LinkAccept{Version: wire.Version, Device: identity.DeviceToWire(dev)}); err != nil {
		return 0, nil, err
	}
	var done wirepb.LinkDone
	if err := s.open(&done); err != nil {
		return 0, nil, err
	}
	var devs []identity.Device
	found := false
	for _, w := range done.Devices {
		d, err := identity.DeviceFromWire(account, w)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %w", ErrBadDeviceList, err)
		}
		found = found || d.PeerID == dev.PeerID
		devs = append(devs, d)
	}
	if !found {
		return 0, nil, fmt.Errorf("%w: it does not list this device", ErrBadDeviceList)
	}
	return done.DeviceVersion, devs, nil
}

// protoMessage is a wire message.
type protoMessage = proto.Message
