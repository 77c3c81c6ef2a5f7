package handshake_test

import (
	"crypto/rand"
	"fmt"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// A complete first contact: Bob publishes a bundle, Alice initiates and
// sends her first message with the initiation, Bob responds and replies.
func Example() {
	alice, _ := keys.GenerateIdentity(rand.Reader)
	bob, _ := keys.GenerateIdentity(rand.Reader)
	bobPrekeys, _ := handshake.NewPrekeys(rand.Reader, bob, 10)
	published := bobPrekeys.Bundle(true).Marshal()

	// Alice.
	bundle, err := handshake.ParseBundle(published)
	if err != nil {
		panic(err)
	}
	init, aliceSession, _ := handshake.Initiate(rand.Reader, alice, bundle, ratchet.Config{})
	first, _ := aliceSession.Encrypt(rand.Reader, []byte("hello Bob"))
	wire := init.Marshal() // sent together with first

	// Bob.
	in, err := handshake.ParseInitiation(wire)
	if err != nil {
		panic(err)
	}
	bobSession, err := handshake.Respond(bob, bobPrekeys, in, ratchet.Config{})
	if err != nil {
		panic(err)
	}
	pt, err := bobSession.Decrypt(rand.Reader, first)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(pt))
	fmt.Println("from Alice:", in.Identity.Equal(alice.Public()))
	reply, _ := bobSession.Encrypt(rand.Reader, []byte("hello Alice"))
	pt, _ = aliceSession.Decrypt(rand.Reader, reply)
	fmt.Println(string(pt))
	// Output:
	// hello Bob
	// from Alice: true
	// hello Alice
}
