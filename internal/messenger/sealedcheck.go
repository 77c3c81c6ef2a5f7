package messenger

import (
	"context"
	"errors"

	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Cheap rejection before expensive work (issue 14): anyone can seal junk
// to our public identity key and deposit it at our mailbox hosts. Each
// fetched box costs one X25519 to open (outside any transaction, on every
// core); what it holds is then checked here, in one read-only transaction
// per page, before the write transaction that stores messages: the sender
// hint names the contact to try (a hint no contact has costs no
// decryption at all), and the envelope is decrypted on copies of that
// contact's sessions, in page order so that a run of messages from one
// sender checks exactly as it will be processed. Junk never reaches the
// writer, so it cannot stall everyone else's messages; a real message is
// decrypted twice (here and in the write), which costs two AEAD opens.

// precheckSealed fills pre[i] with a permanent error for every sealed
// envelope (no initiation: initiations have their own precheck) that
// cannot be from the contact its hint names. A storage error leaves pre
// as it was: the write transaction decides.
func (m *Messenger) precheckSealed(ctx context.Context, envs []*wirepb.Envelope, hints [][]byte, pre []error) {
	var idx []int
	for i, env := range envs {
		if len(env.Initiation) == 0 && i < len(hints) && pre[i] == nil && !m.fromSelfHint(hints[i]) { // our own devices' (sentcopy.go): checked in the write
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	verdict := make([]error, len(envs))
	err := m.st.View(ctx, func(tx *store.Tx) error {
		clear(verdict)
		rx := newBatch()
		for _, i := range idx {
			rx.sealedFrom, rx.peer = hints[i], ""
			c, rec, _, err := m.trialDecrypt(tx, rx, envs[i])
			if isPermanent(err) {
				verdict[i] = err
				continue
			}
			if err != nil {
				return err
			}
			// The next envelope of this sender sees this one's effect, on
			// the session of the device that sent it (trialDecrypt sets
			// rx.peer for a device other than the primary one).
			rx.setRecordFor(c, rx.peer, rec)
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		m.log.Debug("sealedPrecheckSkipped", "err", err)
		return
	}
	for i, v := range verdict {
		if v != nil {
			pre[i] = v
		}
	}
}

// allFailed reports whether every envelope was refused already.
func allFailed(pre []error) bool {
	for _, e := range pre {
		if e == nil {
			return false
		}
	}
	return true
}
