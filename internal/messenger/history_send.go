package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// sendToOwnDevice sends payload p to peer, another active device of our
// account, on our session with it (started if need be, as device copies
// are: fanout_deliver.go), directly, and waits for its answer. The caller
// retries: a history offer or answer is not queued in the device outbox
// (whose rows name a contact).
func (m *Messenger) sendToOwnDevice(ctx context.Context, peer string, p *wirepb.Payload) error {
	return m.sendDirect(ctx, store.DeviceItem{PeerID: peer, Own: true}, p)
}

// sendDirect sends p to the device it names (own: ours; else a listed
// device of contact it.ContactID) on our session with it, and waits for
// the answer.
func (m *Messenger) sendDirect(ctx context.Context, it store.DeviceItem, p *wirepb.Payload) error {
	if m.tr == nil {
		return ErrNotReachable
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := m.rand.Read(id); err != nil {
		return err
	}
	peer := it.PeerID
	it.MessageID, it.Payload, it.NextAttempt = hex.EncodeToString(id), wire.Marshal(p), m.now()
	var tg deviceTarget
	var listed bool
	var rec *wirepb.SessionRecord
	var devCard *identity.Card
	err := m.st.View(ctx, func(tx *store.Tx) (err error) {
		if tg, listed, err = m.target(tx, it); err != nil || !listed {
			return err
		}
		devCard = m.deviceCard(tx, tg, peer)
		rec, err = loadDevRecord(tx, tg.cid, peer)
		return err
	})
	if err != nil {
		return err
	}
	if !listed {
		return fmt.Errorf("%w: %s", ErrNotOwnDevice, shortPeer(peer))
	}
	m.tr.AddAddrs(peer, tg.device.Addrs)
	var fresh *wirepb.SessionEntry
	if len(rec.Sessions) == 0 {
		cctx, cancel := context.WithTimeout(ctx, claimTimeout)
		b, err := m.claimBundle(cctx, peer)
		cancel()
		if err == nil && !b.Identity.Equal(tg.ident) {
			err = fmt.Errorf("%w: claimed prekeys of another identity", handshake.ErrMalformed)
		}
		if err != nil && devCard != nil && devCard.Bundle != nil {
			b, err = devCard.Bundle, nil
		}
		if err != nil {
			return err
		}
		in, sess, err := handshake.Initiate(m.rand, m.id, b, m.cfg.Ratchet)
		if err != nil {
			return err
		}
		fresh = &wirepb.SessionEntry{Ratchet: sess.Marshal(), Initiation: in.Marshal()}
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	s, err := m.tr.OpenStream(dctx, peer, ProtocolMsg)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
	frames, _, err := m.sealDeviceItems(ctx, peer, tg, []store.DeviceItem{it}, fresh)
	if err != nil {
		_ = s.Reset()
		return err
	}
	if err := wire.WriteFrame(s, frames[0]); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.CloseWrite()
	b, err := wire.ReadFrame(s)
	if err != nil {
		return err
	}
	r, err := wire.ParseResponse(b)
	if err != nil || hex.EncodeToString(r.MessageId) != it.MessageID {
		return errors.New("bad answer from the device")
	}
	if r.Status != wirepb.Response_STATUS_OK {
		// The device lost our session (or refused): the next attempt
		// starts a new one, as for device copies.
		_ = m.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteDeviceSession(tg.cid, peer) })
		return fmt.Errorf("refused by the device: %s", r.Error)
	}
	return nil
}
