package apiclient

import (
	"context"
	"net/http"
	"time"
)

// Device is one device of the account (GET /api/v1/devices).
type Device struct {
	ID        string    `json:"id"` // the device's peer id
	Name      string    `json:"name"`
	This      bool      `json:"this"` // the device answering
	AddedAt   time.Time `json:"addedAt"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// History is the chat history transfer with this device, if any:
	// ours to a device we linked, or (incoming) the one a device of ours
	// gives this device, just linked.
	History *HistoryTransfer `json:"history,omitempty"`
}

// HistoryTransfer is where the chat history handed to a device just
// linked stands (docs/CLI.md "Linked devices").
type HistoryTransfer struct {
	ID          string `json:"id"`
	Incoming    bool   `json:"incoming"`
	State       string `json:"state"` // exporting, offered, fetching, importing, complete, failed, refused
	Messages    int    `json:"messages"`
	Imported    int    `json:"imported,omitempty"`
	Bytes       int64  `json:"bytes"`
	ChunksDone  int    `json:"chunksDone"`
	ChunksTotal int    `json:"chunksTotal"`
	Error       string `json:"error,omitempty"`
}

// Devices is the account's device list and its version (it grows by one
// with each device linked or revoked).
type Devices struct {
	Version uint64   `json:"version"`
	Devices []Device `json:"devices"`
	// Revoked is set when this device was removed from the account
	// (as in Status).
	Revoked *Revocation `json:"revoked,omitempty"`
}

// LinkStarted is a link waiting for the user to compare the short codes
// (POST /api/v1/devices/link).
type LinkStarted struct {
	ID     string `json:"id"`
	Code   string `json:"code"`   // shown on both devices: "123 456"
	Device string `json:"device"` // the new device's peer id
}

// Devices lists the account's devices.
func (c *Client) Devices(ctx context.Context) (Devices, error) {
	var out Devices
	err := c.do(ctx, http.MethodGet, "/api/v1/devices", nil, &out)
	return out, err
}

// StartLink reads a link code shown by a new device and runs the key
// exchange with it; compare the codes, then ConfirmLink.
func (c *Client) StartLink(ctx context.Context, link string) (LinkStarted, error) {
	var out LinkStarted
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/link", map[string]string{"link": link}, &out)
	return out, err
}

// ConfirmLink finishes (accept) or abandons a started link; the chat
// history is offered to the new device.
func (c *Client) ConfirmLink(ctx context.Context, id string, accept bool) (Device, error) {
	return c.ConfirmLinkHistory(ctx, id, accept, true)
}

// ConfirmLinkHistory is ConfirmLink with the choice of handing the chat
// history to the new device (history) or not.
func (c *Client) ConfirmLinkHistory(ctx context.Context, id string, accept, history bool) (Device, error) {
	var out Device
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/link/confirm", map[string]any{"id": id, "accept": accept, "history": history}, &out)
	return out, err
}

// RevokeDevice revokes a device of the account (by id or a 6+ character
// prefix or suffix of it).
func (c *Client) RevokeDevice(ctx context.Context, id string) (Device, error) {
	var out Device
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/revoke", map[string]string{"id": id}, &out)
	return out, err
}

// Linking this device from the web app while it has no profile yet (the
// node waits in setup mode): POST /api/v1/setup/link starts it,
// GET /api/v1/setup/link says where it is, POST /api/v1/setup/link/confirm
// answers the code comparison.

// SetupLinkRequest is POST /api/v1/setup/link.
type SetupLinkRequest struct {
	DeviceName   string `json:"deviceName"`
	Passphrase   string `json:"passphrase,omitempty"`
	NoPassphrase bool   `json:"noPassphrase,omitempty"`
	// NoHistory: refuse the chat history the existing device offers
	// (samizdat link --no-history).
	NoHistory bool `json:"noHistory,omitempty"`
}

// States of SetupLink.
const (
	LinkWaiting = "waiting" // showing the code: accept it on a device of the account
	LinkCompare = "compare" // both devices show Code: compare, then confirm
	LinkLinking = "linking" // confirmed, receiving the account
	LinkDone    = "done"    // linked: the node starts (the page reloads)
	LinkFailed  = "failed"  // see Error; start again
)

// SetupLink is where linking this device is.
type SetupLink struct {
	State string `json:"state"`
	Link  string `json:"link,omitempty"` // the link code (samizdat-link:…)
	QR    string `json:"qr,omitempty"`   // the link code as a PNG data: URL
	Code  string `json:"code,omitempty"` // once the existing device connected
	Error string `json:"error,omitempty"`
}
