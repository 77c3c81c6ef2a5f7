package handshake

import (
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// TestReplayedInitiationRefused replays an initiation to the responder's
// persisted prekeys after the first one was answered: with one-time
// prekeys it names a spent one; without (the initiator could claim none)
// the signed prekey's replay cache must know it.
func TestReplayedInitiationRefused(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 2)
	for _, tc := range []struct {
		name    string
		oneTime bool
		want    error
	}{
		{"one-time prekeys", true, ErrPrekeyUsed},
		{"signed and last-resort prekeys only", false, ErrReplayedInitiation},
	} {
		in, _, err := Initiate(r, alice.id, bob.pk.Bundle(tc.oneTime), ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); err != nil {
			t.Fatalf("%s: first initiation: %v", tc.name, err)
		}
		// Bob persists his prekeys and restarts; the attacker replays the
		// recorded initiation.
		saved, err := UnmarshalPrekeys(bob.pk.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		bob.pk = saved
		replay, err := ParseInitiation(in.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		before := bob.pk.Marshal()
		_, err = Respond(bob.id, bob.pk, replay, ratchet.Config{})
		if err == nil {
			t.Fatalf("%s: replayed initiation accepted", tc.name)
		}
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: replay: %v, want %v", tc.name, err, tc.want)
		}
		if string(bob.pk.Marshal()) != string(before) {
			t.Fatalf("%s: refused replay changed the prekeys", tc.name)
		}
	}
}
