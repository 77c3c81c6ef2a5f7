package app

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/store"
)

// blobSettings holds the user's settings (apiclient.Settings, JSON).
const blobSettings = "settings"

// settings keeps the user's settings in the store and applies those the
// node acts on (read receipts, mutes for --on-message).
type settings struct {
	n   *Node
	mu  sync.Mutex
	cur *apiclient.Settings // nil until loaded
}

var _ api.SettingsBackend = (*settings)(nil)

func (s *settings) Settings(ctx context.Context) (apiclient.Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return clone(*s.cur), nil
	}
	st := apiclient.DefaultSettings()
	err := s.n.Store.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobSettings)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &st)
	})
	if err != nil {
		return st, err
	}
	_ = st.Normalize(time.Now())
	s.cur = &st
	return clone(st), nil
}

func (s *settings) SaveSettings(ctx context.Context, st apiclient.Settings) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	prev, _ := s.Settings(ctx) // the account's part follows on our other devices (settingsync.go)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.n.Store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobSettings, b) }); err != nil {
		return err
	}
	c := clone(st)
	s.cur = &c
	s.n.Messenger.SetReadReceipts(st.ReadReceipts)
	applyAutoDownload(s.n, st)
	s.syncSettings(ctx, prev, st)
	return nil
}

// applyAutoDownload sets the media service's automatic download limit
// from the settings (0: every file).
func applyAutoDownload(n *Node, st apiclient.Settings) {
	if svc := n.Messenger.Media(); svc != nil {
		svc.SetAutoFetch(int64(st.AutoDownloadMB) << 20)
	}
}

// muted answers HookOptions.Muted.
func (s *settings) muted(kind, id string) bool {
	st, err := s.Settings(context.Background())
	return err == nil && st.IsMuted(kind, id, time.Now())
}

func clone(s apiclient.Settings) apiclient.Settings {
	m := make(map[string]time.Time, len(s.Muted))
	for k, v := range s.Muted {
		m[k] = v
	}
	s.Muted = m
	return s
}
