// Package mailbox is samizdat's store-and-forward service (DESIGN.md §7): a
// host keeps padded, opaque envelopes for a mailbox id until its owner
// fetches and deletes them, so a message reaches a recipient that was
// offline when it was sent, even after the sender has gone offline too.
//
// The protocol is /samizdat/mailbox/1 (messages in wirepb/mailbox.proto,
// version 1). Anyone may deposit an envelope for a mailbox id; only the
// holder of the mailbox's Ed25519 key may list and delete them, after a
// challenge-response bound to the host's peer id. A mailbox id is
// SHA-256("samizdat/mailbox-id/v1" || public key): the host sees neither
// the owner's account nor a stable identifier, since owners rotate mailbox
// keys at will (at least on every card update).
//
// The Server keeps envelopes durably in a store.MailboxStore (accepted means
// committed), dedupes them by SHA-256 per mailbox, enforces quotas per
// mailbox and in total, a TTL and deposit rates per peer and per mailbox
// (peer ids are free: clients use a throwaway one per stream). The client
// functions (Deposit, DepositBatch, OpenSession, Fetch, Delete) speak to a
// host through any Opener, normally a *p2p.Node.
//
// A host answers the requests of a stream in order, so a client may send
// several before reading the answers: DepositBatch pipelines its deposits,
// and the Server commits the deposits that have arrived on a stream
// together and answers them in one write (server_pipe.go). This is the
// same version 1 protocol: neither side has to know the other does it.
//
// This package must never look inside an envelope, log envelope bytes,
// keys, nonces or full mailbox ids (a short prefix at most), or import
// go-libp2p (streams come from internal/p2p).
package mailbox
