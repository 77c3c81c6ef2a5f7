package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"unicode"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// InviteScheme starts every invite link.
const InviteScheme = "samizdat:"

// ErrBadInvite is returned by ParseInvite for text that is not a valid
// invite link; the wrapped message says what is wrong with it.
var ErrBadInvite = errors.New("invalid invite link")

// Invite is a decoded invite link: an account id, the account's signed
// contact card (so that first contact needs no lookup) and an optional
// one-time secret.
type Invite struct {
	AccountID  string
	Card       *Card
	SignedCard []byte
	Secret     []byte
}

// EncodeInvite builds the link for a signed card:
//
//	samizdat:<account id>?card=<base64url of the Invite message>
func EncodeInvite(signedCard, secret []byte) (string, error) {
	c, err := ParseSignedCard(signedCard)
	if err != nil {
		return "", err
	}
	inv := wire.Marshal(&wirepb.Invite{Version: wire.Version, SignedCard: signedCard, Secret: secret})
	return InviteScheme + c.AccountID() + "?card=" + base64.RawURLEncoding.EncodeToString(inv), nil
}

// ParseInvite decodes and verifies an invite link. Whitespace anywhere in
// the link (line breaks from copy and paste) is ignored.
func ParseInvite(link string) (*Invite, error) {
	link = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, link)
	if !strings.HasPrefix(strings.ToLower(link), InviteScheme) {
		return nil, errorf(ErrBadInvite, "it must start with %q", InviteScheme)
	}
	rest := link[len(InviteScheme):]
	acct, query, ok := strings.Cut(rest, "?card=")
	if !ok {
		return nil, errorf(ErrBadInvite, "the contact card is missing (was the link cut short?)")
	}
	if _, err := ParseAccountID(acct); err != nil {
		return nil, errorf(ErrBadInvite, "%v", err)
	}
	if len(query) > base64.RawURLEncoding.EncodedLen(wire.MaxInviteSize) {
		return nil, errorf(ErrBadInvite, "too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(query)
	if err != nil {
		return nil, errorf(ErrBadInvite, "the contact card is damaged (was the link cut short?)")
	}
	w, err := wire.ParseInvite(raw)
	if err != nil {
		return nil, errorf(ErrBadInvite, "%v", err)
	}
	card, err := ParseSignedCard(w.SignedCard)
	if err != nil {
		return nil, errorf(ErrBadInvite, "%w", err) // ErrOldCard, ErrBadDevice stay visible
	}
	if card.AccountID() != strings.ToLower(acct) {
		return nil, errorf(ErrBadInvite, "the card belongs to another account than the link names")
	}
	return &Invite{AccountID: card.AccountID(), Card: card, SignedCard: w.SignedCard, Secret: w.Secret}, nil
}

// inviteProofLabel separates InviteProof from every other use of a secret.
const inviteProofLabel = "samizdat/invite-proof/v1"

// InviteProof is what the holder of an invite (long or short) puts in the
// first messages it sends the inviter: an HMAC under the invite's one-time
// secret, bound to both account ids, so that the inviter adds it as a
// contact at once instead of filing it as a stranger's request. It travels
// inside the end-to-end encrypted payload; bound to the sender's account,
// it cannot be lifted into another account's message.
func InviteProof(secret []byte, fromAccount, toAccount string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(inviteProofLabel))
	mac.Write([]byte{0})
	mac.Write([]byte(fromAccount))
	mac.Write([]byte{0})
	mac.Write([]byte(toAccount))
	return mac.Sum(nil)
}
