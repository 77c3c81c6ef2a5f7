// Package mesh is samizdat's shutdown mode (DESIGN.md §7 "Mesh mode",
// issue 8): store-carry-forward of sealed envelopes between nearby peers
// when there is no internet, so that a message crosses from one LAN to
// another in the pocket of a carrier.
//
// A carried item is exactly what a mailbox deposit carries: a mailbox id and
// opaque, padded envelope bytes. Carriers learn nothing else (no sender, no
// recipient account, no content): the mailbox id is the recipient's, not
// its account id. Items are bounded in count, bytes, hops (default 7) and
// time, and deduplicated by envelope hash.
//
// When two mesh peers meet (connected by any Transport: libp2p over a LAN
// found by mDNS today, Bluetooth LE on phones later) they reconcile the sets
// of item ids they know with a bucketed summary: the initiator sends one
// 8-byte XOR fingerprint (and a count) per bucket, the responder answers
// with its ids in the buckets that differ, and then only the missing items
// travel, in both directions. Peers that share most items exchange a few
// kilobytes. The recipient proves ownership of its mailbox (a signature by
// the mailbox key, bound to both peer ids) to take what is carried for it,
// and answers with a signed receipt that makes every carrier drop the
// envelope. A carrier that meets one of the recipient's mailbox hosts
// deposits the envelope there with the mailbox protocol.
//
// The protocol is /samizdat/mesh/1 (messages in wirepb/mesh.proto). This
// package must never look inside an envelope, log envelope bytes, keys or
// full mailbox ids, or import go-libp2p.
package mesh
