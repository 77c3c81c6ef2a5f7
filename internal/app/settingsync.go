package app

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Settings that belong to the account follow on its other devices
// (issue 17, messenger/devsync.go): read receipts, muted chats, the
// automatic download limit and the language. Notifications and sounds
// stay each device's own (a laptop may be silent while the phone rings).

// accountSettings are the synced part of apiclient.Settings.
type accountSettings struct {
	ReadReceipts   bool                 `json:"readReceipts"`
	Language       string               `json:"language"`
	Muted          map[string]time.Time `json:"muted"`
	AutoDownloadMB int                  `json:"autoDownloadMB"`
}

func accountPart(s apiclient.Settings) accountSettings {
	return accountSettings{ReadReceipts: s.ReadReceipts, Language: s.Language, Muted: s.Muted, AutoDownloadMB: s.AutoDownloadMB}
}

func (a accountSettings) equal(b accountSettings) bool {
	return a.ReadReceipts == b.ReadReceipts && a.Language == b.Language && a.AutoDownloadMB == b.AutoDownloadMB &&
		maps.EqualFunc(a.Muted, b.Muted, func(x, y time.Time) bool { return x.Equal(y) })
}

// syncSettings sends the account part of st to our other devices if it
// differs from prev.
func (s *settings) syncSettings(ctx context.Context, prev, st apiclient.Settings) {
	a := accountPart(st)
	if a.equal(accountPart(prev)) {
		return
	}
	b, err := json.Marshal(a)
	if err == nil {
		err = s.n.Messenger.SyncSettings(ctx, b)
	}
	if err != nil {
		s.n.log.Warn("settingsSyncFailed", "err", err)
	}
}

// applySynced takes the account part of the settings from another device
// of ours; this device's own part stays.
func (s *settings) applySynced(b []byte) {
	var a accountSettings
	if err := json.Unmarshal(b, &a); err != nil {
		s.n.log.Info("syncedSettingsRefused", "err", err)
		return
	}
	ctx := context.Background()
	s.mu.Lock() // read, change and write as one: a local save in between is not undone
	defer s.mu.Unlock()
	st := apiclient.DefaultSettings()
	if s.cur != nil {
		st = clone(*s.cur)
	} else if err := s.n.Store.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobSettings)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return json.Unmarshal(b, &st)
	}); err != nil {
		s.n.log.Warn("syncedSettingsNotSaved", "err", err)
		return
	}
	st.ReadReceipts, st.Language, st.Muted, st.AutoDownloadMB = a.ReadReceipts, a.Language, a.Muted, a.AutoDownloadMB
	if err := st.Normalize(time.Now()); err != nil {
		s.n.log.Info("syncedSettingsRefused", "err", err)
		return
	}
	nb, err := json.Marshal(st)
	if err != nil {
		return
	}
	if err := s.n.Store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobSettings, nb) }); err != nil {
		s.n.log.Warn("syncedSettingsNotSaved", "err", err)
		return
	}
	c := clone(st)
	s.cur = &c
	s.n.Messenger.SetReadReceipts(st.ReadReceipts)
	applyAutoDownload(s.n, st)
}
