package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Settings are the user's preferences kept by the node (GET and PUT
// /api/v1/settings), so that they survive a browser change. The web app
// applies the notification ones; `up --on-message` honours Muted.
type Settings struct {
	NotifyMessages bool `json:"notifyMessages"` // system notification for a 1:1 message
	NotifyGroups   bool `json:"notifyGroups"`   // … for a group message
	NotifyAlerts   bool `json:"notifyAlerts"`   // … for an alert post (never muted)
	// ShowText puts the text in notifications; off: only "New message"
	// (a shared screen).
	ShowText      bool `json:"showText"`
	SoundMessages bool `json:"soundMessages"`
	SoundAlerts   bool `json:"soundAlerts"`
	// ReadReceipts: contacts are told which of their messages we read
	// (`up --no-read-receipts` turns them off whatever this says).
	ReadReceipts bool `json:"readReceipts"`
	// Language of the web app: "" (the browser's), "en", "ru" or "fa".
	Language string `json:"language"`
	// Muted chats and groups, until a time: keys "chat:<account id>" or
	// "group:<group id hex>". Channels cannot be muted: their alerts
	// always notify while the channel is followed.
	Muted map[string]time.Time `json:"muted"`
	// AutoDownloadMB: received files up to this many MiB are fetched as
	// they arrive, larger ones when asked for (POST /api/v1/files/fetch,
	// or saving them); 0 fetches every file as it arrives.
	AutoDownloadMB int `json:"autoDownloadMB"`
}

// DefaultSettings are the settings of a node that never saved any.
func DefaultSettings() Settings {
	return Settings{NotifyMessages: true, NotifyGroups: true, NotifyAlerts: true, ShowText: true,
		SoundMessages: true, SoundAlerts: true, ReadReceipts: true, Muted: map[string]time.Time{}}
}

// Languages are the web app's languages (Settings.Language).
var Languages = []string{"", "en", "ru", "fa"}

// MaxAutoDownloadMB bounds Settings.AutoDownloadMB (2 GiB, the default
// largest file).
const MaxAutoDownloadMB = 2048

// MaxMuted bounds Settings.Muted.
const MaxMuted = 4096

// Normalize checks s and drops the mutes that ended before now.
func (s *Settings) Normalize(now time.Time) error {
	ok := false
	for _, l := range Languages {
		ok = ok || s.Language == l
	}
	if !ok {
		return fmt.Errorf("language %q: use one of en, ru, fa, or empty for the browser's", s.Language)
	}
	if s.AutoDownloadMB < 0 || s.AutoDownloadMB > MaxAutoDownloadMB {
		return fmt.Errorf("autoDownloadMB %d: use 0 (every file) to %d", s.AutoDownloadMB, MaxAutoDownloadMB)
	}
	if s.Muted == nil {
		s.Muted = map[string]time.Time{}
	}
	if len(s.Muted) > MaxMuted {
		return fmt.Errorf("too many muted chats (at most %d)", MaxMuted)
	}
	for k, until := range s.Muted {
		kind, id, _ := strings.Cut(k, ":")
		if (kind != "chat" && kind != "group") || id == "" || len(id) > 128 {
			return fmt.Errorf("muted %q: keys are chat:<account id> or group:<group id> (channels' alerts cannot be muted)", k)
		}
		if !until.After(now) {
			delete(s.Muted, k)
		}
	}
	return nil
}

// IsMuted says whether a chat ("chat" or "group", id) is muted at now.
func (s Settings) IsMuted(kind, id string, now time.Time) bool {
	until, ok := s.Muted[kind+":"+id]
	return ok && until.After(now)
}

// Settings returns the node's settings.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var s Settings
	err := c.do(ctx, http.MethodGet, "/api/v1/settings", nil, &s)
	return s, err
}

// PutSettings saves settings (fields left out of the JSON keep their
// value; the API fills them in) and returns what was saved.
func (c *Client) PutSettings(ctx context.Context, s Settings) (Settings, error) {
	var out Settings
	err := c.do(ctx, http.MethodPut, "/api/v1/settings", s, &out)
	return out, err
}
