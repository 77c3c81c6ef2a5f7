package messenger

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Short invites (issue 15, identity.ShortInvite): a link that carries no
// card, only the account key, a one-time secret and a few entry points of
// this device. Whoever holds the link fetches our card over
// /samizdat/card/1, proving the secret, or from the DHT record
// (cardrecord.go), and checks it against the account key.
//
// /samizdat/card/1 (one request, one answer, then the stream closes):
//
//	request  = version (1) | identity.CardRequestProof (32)
//	response = cardOK (1) | length (4, big-endian) | signed card
//	         | cardRefused (1)   the proof matches no live secret of ours
//
// The secrets are kept (blobShortSecrets) until they expire, so a link
// shown as a QR code serves everyone who scans it; each `invite` makes a
// new one. Without a live secret the protocol gives nothing away: the card
// is not served to a peer that merely found this device.

// ProtocolCard is the stream protocol serving our card to holders of a
// short invite.
const ProtocolCard = "/samizdat/card/1"

const (
	cardProtoVersion = 1
	cardOK           = 0
	cardRefused      = 1
	cardRequestSize  = 1 + identity.CardRequestProofSize

	blobShortSecrets  = "shortinvite.secrets"
	shortSecretRecord = identity.ShortSecretSize + 8 // secret | expiry (unix seconds)
	// ShortInviteLifetime is how long a short invite's secret is honoured.
	ShortInviteLifetime = identity.DefaultCardLifetime
	maxShortSecrets     = 1024 // the oldest are forgotten first
	cardFetchTimeout    = 15 * time.Second
)

// Errors of short invites.
var (
	// ErrCardUnavailable is returned by AddContact for a short invite whose
	// card could be fetched neither from the inviter nor from the DHT.
	ErrCardUnavailable = errors.New("could not fetch the contact card of this invite")
	// ErrCardMismatch is returned by AddContact for a short invite whose
	// fetched card is not signed by the account the link names.
	ErrCardMismatch = errors.New("the contact card fetched for this invite belongs to another account")
)

// ShortInvite returns a short samizdat: link (identity.ShortInvite) with a
// new one-time secret, remembered for ShortInviteLifetime.
func (m *Messenger) ShortInvite(ctx context.Context) (string, error) {
	if _, err := m.card(ctx); err != nil {
		return "", err
	}
	signed, _ := m.currentCard()
	card, err := identity.ParseSignedCard(signed)
	if err != nil {
		return "", err
	}
	if len(card.Devices) == 0 {
		return "", errors.New("our card names no device")
	}
	dev := card.Devices[0]
	devKey, err := p2p.PeerIDPublicKey(dev.PeerID)
	if err != nil {
		return "", err
	}
	secret, err := m.newInviteSecret(ctx)
	if err != nil {
		return "", err
	}
	si := &identity.ShortInvite{AccountKey: m.id.Public().SigningKey(), Secret: secret, DeviceKey: devKey}
	return fitAddrs(si, dev.Addrs)
}

// newInviteSecret makes and remembers (for ShortInviteLifetime) a new
// one-time secret for an invite, long or short: it serves our card to a
// short invite's holder (/samizdat/card/1) and makes the holder's first
// message a contact's, not a stranger's request (InviteProof).
func (m *Messenger) newInviteSecret(ctx context.Context) ([]byte, error) {
	secret := make([]byte, identity.ShortSecretSize)
	if _, err := io.ReadFull(m.rand, secret); err != nil {
		return nil, err
	}
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		old, err := tx.Blob(blobShortSecrets)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		exp := binary.BigEndian.AppendUint64(nil, uint64(m.now().Add(ShortInviteLifetime).Unix()))
		recs := append(liveSecrets(old, m.now()), append(secret, exp...))
		if len(recs) > maxShortSecrets {
			recs = recs[len(recs)-maxShortSecrets:]
		}
		return tx.PutBlob(blobShortSecrets, joinRecords(recs))
	})
	if err != nil {
		return nil, err
	}
	return secret, nil
}

// blobLongInvite holds the secret of our long invite link and the serial
// of the card it was made with.
const blobLongInvite = "invite.long"

// longInviteSecret returns the secret of the long link for card serial:
// the one made for it while it is live, else a new one.
func (m *Messenger) longInviteSecret(ctx context.Context, serial uint64) ([]byte, error) {
	var secret []byte
	err := m.st.View(ctx, func(tx *store.Tx) error {
		secret = nil
		b, err := tx.Blob(blobLongInvite)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if len(b) != identity.ShortSecretSize+8 || binary.BigEndian.Uint64(b[identity.ShortSecretSize:]) != serial {
			return nil
		}
		all, err := tx.Blob(blobShortSecrets)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		for _, r := range liveSecrets(all, m.now().Add(ShortInviteLifetime/2)) { // half its life left at least
			if hmac.Equal(r[:identity.ShortSecretSize], b[:identity.ShortSecretSize]) {
				secret = b[:identity.ShortSecretSize]
			}
		}
		return nil
	})
	if err != nil || secret != nil {
		return secret, err
	}
	if secret, err = m.newInviteSecret(ctx); err != nil {
		return nil, err
	}
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutBlob(blobLongInvite, binary.BigEndian.AppendUint64(append([]byte(nil), secret...), serial))
	})
	return secret, err
}

// keepInviteProof remembers, for contact cid added from inv, the proof of
// the invite's secret that our first messages to it carry.
func (m *Messenger) keepInviteProof(tx *store.Tx, cid int64, inv *identity.Invite) error {
	if len(inv.Secret) == 0 {
		return nil
	}
	return tx.PutBlob(blobInviteProof(cid), identity.InviteProof(inv.Secret, m.acct, inv.AccountID))
}

// attachInviteProof puts in p (a first message of a session to contact
// cid, carrying our card) the invite proof kept for cid, if any.
func attachInviteProof(tx *store.Tx, cid int64, p *wirepb.Payload) error {
	b, err := tx.Blob(blobInviteProof(cid))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	p.InviteProof = b
	return nil
}

// fitAddrs puts as many of addrs in si as fit a short link, best first
// (rankAddrs), and returns the link.
func fitAddrs(si *identity.ShortInvite, addrs []string) (string, error) {
	link, err := identity.EncodeShortInvite(si)
	if err != nil {
		return "", err
	}
	for _, a := range rankAddrs(addrs) {
		b, err := p2p.CompactAddr(a)
		if err != nil || len(b) > identity.MaxShortEntrySize {
			continue
		}
		si.Addrs = append(si.Addrs, b)
		l, err := identity.EncodeShortInvite(si)
		if err != nil {
			si.Addrs = si.Addrs[:len(si.Addrs)-1] // does not fit: a shorter one may
			continue
		}
		link = l
	}
	return link, nil
}

// liveSecrets splits the secrets blob into its unexpired records.
func liveSecrets(b []byte, now time.Time) [][]byte {
	var out [][]byte
	for ; len(b) >= shortSecretRecord; b = b[shortSecretRecord:] {
		r := b[:shortSecretRecord]
		if int64(binary.BigEndian.Uint64(r[identity.ShortSecretSize:])) > now.Unix() {
			out = append(out, r)
		}
	}
	return out
}

func joinRecords(recs [][]byte) []byte {
	out := make([]byte, 0, len(recs)*shortSecretRecord)
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

// rankAddrs orders our addresses for a short invite, best first: routable
// before private and loopback ones (the scanner is rarely on our machine),
// TLS-looking WebSocket first among equals (it gets through DPI), never a
// relayed address (too long to fit) nor a DNS name (never resolved).
func rankAddrs(addrs []string) []string {
	rank := func(a string) int {
		r := 0
		switch {
		case strings.HasPrefix(a, "/ip4/127.") || strings.HasPrefix(a, "/ip6/::1/"):
			r += 20
		case strings.HasPrefix(a, "/ip4/10.") || strings.HasPrefix(a, "/ip4/192.168.") || strings.HasPrefix(a, "/ip6/fe80"):
			r += 10
		}
		switch {
		case strings.Contains(a, "/tls/") && strings.HasSuffix(a, "/ws"):
		case strings.HasSuffix(a, "/quic-v1"):
			r += 2
		case strings.HasSuffix(a, "/tcp/"+lastPart(a)):
			r++
		default:
			r += 3
		}
		return r
	}
	var out []string
	seen := map[string]bool{}
	for r := 0; r < 24; r++ {
		for _, a := range addrs {
			if !seen[a] && !strings.Contains(a, "/p2p-circuit") && !strings.HasPrefix(a, "/dns") && rank(a) == r {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func lastPart(a string) string { return a[strings.LastIndex(a, "/")+1:] }

// handleCardRequest serves our card to a holder of a live short invite.
func (m *Messenger) handleCardRequest(s p2p.Stream) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StreamTimeout)
	defer cancel()
	_ = s.SetDeadline(m.now().Add(m.cfg.StreamTimeout))
	var req [cardRequestSize]byte
	if _, err := io.ReadFull(s, req[:]); err != nil || req[0] != cardProtoVersion {
		_ = s.Reset()
		return
	}
	if !m.cardProofValid(ctx, s.RemotePeer(), req[1:]) {
		m.log.Info("cardRequestRefused")
		_, _ = s.Write([]byte{cardRefused})
		_ = s.Close()
		return
	}
	card, err := m.card(ctx)
	if err != nil {
		_ = s.Reset()
		return
	}
	out := binary.BigEndian.AppendUint32([]byte{cardOK}, uint32(len(card)))
	if _, err := s.Write(append(out, card...)); err != nil {
		_ = s.Reset()
		return
	}
	m.log.Debug("cardServed")
	_ = s.Close()
}

func (m *Messenger) cardProofValid(ctx context.Context, remote string, proof []byte) bool {
	var recs [][]byte
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobShortSecrets)
		if err == nil {
			recs = liveSecrets(b, m.now())
		}
		return nil
	})
	ok := false
	for _, r := range recs {
		want := identity.CardRequestProof(r[:identity.ShortSecretSize], remote, m.tr.PeerID())
		ok = hmac.Equal(want, proof) || ok // no early exit: constant work
	}
	return ok
}

// parseInviteLink decodes a long invite, or fetches and checks the card a
// short one leads to.
func (m *Messenger) parseInviteLink(ctx context.Context, link string) (*identity.Invite, error) {
	if !identity.IsShortInvite(link) {
		return identity.ParseInvite(link)
	}
	si, err := identity.ParseShortInvite(link)
	if err != nil {
		return nil, err
	}
	acct := si.AccountID()
	if acct == m.acct {
		return nil, ErrSelf
	}
	signed, err := m.fetchShortCard(ctx, si)
	if err != nil {
		return nil, err
	}
	card, err := identity.ParseSignedCard(signed)
	if err != nil || card.AccountID() != acct {
		return nil, ErrCardMismatch // fetchShortCard checked: cannot happen
	}
	return &identity.Invite{AccountID: acct, Card: card, SignedCard: signed, Secret: si.Secret}, nil
}

// fetchShortCard gets the card a short invite leads to, from the inviter's
// device, else from the DHT, and checks it is the account's.
func (m *Messenger) fetchShortCard(ctx context.Context, si *identity.ShortInvite) ([]byte, error) {
	if m.tr == nil {
		return nil, fmt.Errorf("%w: the node is not running; start it (samizdat up) and add the contact again", ErrCardUnavailable)
	}
	acct := si.AccountID()
	mismatch := false
	signed, direct := m.fetchCardDirect(ctx, si)
	if direct == nil {
		card, err := identity.ParseSignedCard(signed)
		if err == nil && card.AccountID() == acct {
			m.log.Info("shortInviteCard", "from", "inviter", "account", identity.Short(acct))
			return signed, nil
		}
		mismatch = true
		direct = ErrCardMismatch
	}
	m.log.Info("shortInviteDirectFailed", "err", direct)
	var fromDHT error = p2p.ErrNoDHT
	if d := m.directory(); d != nil {
		dctx, cancel := context.WithTimeout(ctx, cardFetchTimeout)
		rec, err := d.GetValue(dctx, cardRecordKey(acct))
		cancel()
		if err == nil {
			_, signed, err := identity.OpenCardRecord(acct, rec)
			if err == nil {
				m.log.Info("shortInviteCard", "from", "dht", "account", identity.Short(acct))
				return signed, nil
			}
			mismatch = true
		}
		fromDHT = err
	}
	m.log.Info("shortInviteDHTFailed", "err", fromDHT)
	if mismatch {
		return nil, fmt.Errorf("%w: the link may have been tampered with; ask for a new invite", ErrCardMismatch)
	}
	return nil, fmt.Errorf("%w: the inviter is not reachable (%v) and the DHT has no card of theirs (%v); try again when they are online, or ask for the full invite link",
		ErrCardUnavailable, shortErr(direct), shortErr(fromDHT))
}

// shortErr keeps the first line of an error for a user-facing message.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// errCardRefused is returned by fetchCardDirect when the inviter's device
// knows no such secret (expired, or made up).
var errCardRefused = errors.New("the inviter does not know this invite (expired?)")

// fetchCardDirect asks the inviter's device for its card over
// /samizdat/card/1.
func (m *Messenger) fetchCardDirect(ctx context.Context, si *identity.ShortInvite) ([]byte, error) {
	peerID, err := p2p.PeerIDFromPublicKey(si.DeviceKey)
	if err != nil {
		return nil, err
	}
	if peerID == m.tr.PeerID() {
		return nil, ErrSelf
	}
	ctx, cancel := context.WithTimeout(ctx, cardFetchTimeout)
	defer cancel()
	var addrs []string
	for _, b := range si.Addrs {
		if a, err := p2p.ExpandAddr(b); err == nil {
			addrs = append(addrs, a)
		}
	}
	// One address at a time: Connect refuses the whole list for one it
	// may not dial (DNS, or not loopback on a loopback-only node). If none
	// works, OpenStream still tries what the network knows of the peer
	// (a DHT lookup finds relayed addresses too long for the link).
	var cerr error
	for _, a := range addrs {
		if cerr = m.tr.Connect(ctx, peerID, []string{a}); cerr == nil {
			break
		}
	}
	s, err := m.tr.OpenStream(ctx, peerID, ProtocolCard)
	if err != nil {
		if cerr != nil {
			return nil, cerr // says more: the link's own addresses failed
		}
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	req := append([]byte{cardProtoVersion}, identity.CardRequestProof(si.Secret, m.tr.PeerID(), peerID)...)
	if _, err := s.Write(req); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.CloseWrite()
	var status [1]byte
	if _, err := io.ReadFull(s, status[:]); err != nil {
		return nil, fmt.Errorf("reading the card: %w", err)
	}
	if status[0] == cardRefused {
		return nil, errCardRefused
	}
	var n [4]byte
	if status[0] != cardOK {
		return nil, fmt.Errorf("unknown answer %d", status[0])
	}
	if _, err := io.ReadFull(s, n[:]); err != nil {
		return nil, fmt.Errorf("reading the card: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > wire.MaxCardSize {
		return nil, fmt.Errorf("card of %d bytes", size)
	}
	card := make([]byte, size)
	if _, err := io.ReadFull(s, card); err != nil {
		return nil, fmt.Errorf("reading the card: %w", err)
	}
	return card, nil
}
