package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Setup states of GET /api/v1/status (Status.Setup) while a node waits
// for its profile.
const (
	SetupNew    = "new"    // no profile yet: POST /api/v1/init creates it
	SetupLocked = "locked" // the profile needs its passphrase: POST /api/v1/unlock
)

// More error codes.
const (
	CodeNotReady        = "not_ready"        // 503: the profile is not set up or unlocked yet
	CodeWrongPassphrase = "wrong_passphrase" // 403: POST /api/v1/unlock with a wrong passphrase
)

// Chat is one item of GET /api/v1/chats.
type Chat struct {
	Contact Contact  `json:"contact"`
	Last    *Message `json:"last"` // null: no message yet
	Unread  int      `json:"unread"`
}

// Page is GET /api/v1/messages?before=…: a conversation read from its end.
type Page struct {
	Contact  Contact   `json:"contact"`
	Messages []Message `json:"messages"`
	More     bool      `json:"more"` // older messages remain
}

// ReadRequest is POST /api/v1/messages/read.
type ReadRequest struct {
	Contact string `json:"contact"`
	UpTo    int64  `json:"upTo"` // local seq; 0: all
}

// ReadResult answers POST /api/v1/messages/read.
type ReadResult struct {
	Marked int `json:"marked"`
}

// SearchHit is one item of GET /api/v1/search.
type SearchHit struct {
	Message
	ContactName string `json:"contactName"`
}

// VerifyRequest is POST /api/v1/contacts/verify.
type VerifyRequest struct {
	Contact  string `json:"contact"`
	Verified bool   `json:"verified"`
}

// Ways a contact is reachable, in GET /api/v1/connectivity.
const (
	LinkDirect  = "direct"  // a direct connection is open
	LinkRelay   = "relay"   // connected only through a relay
	LinkMailbox = "mailbox" // not connected; mail waits at a mailbox host
	LinkOffline = "offline" // not connected and no mailbox host
)

// ContactLink is how one contact is reachable and what waits for them.
type ContactLink struct {
	ContactID int64  `json:"contactId"`
	Name      string `json:"name"`
	Link      string `json:"link"`   // one of the Link constants
	Queued    int    `json:"queued"` // outgoing messages not sent yet
	Failed    int    `json:"failed"`
}

// Connectivity is GET /api/v1/connectivity: how this node is connected,
// in terms a person understands.
type Connectivity struct {
	Overall   string         `json:"overall"` // best Link over contacts and mailbox hosts
	Peers     int            `json:"peers"`   // connected peers of any kind
	Contacts  []ContactLink  `json:"contacts"`
	Mailboxes []MailboxHost  `json:"mailboxes"`
	Outbox    map[string]int `json:"outbox"`
}

// InitRequest is POST /api/v1/init.
type InitRequest struct {
	Name         string `json:"name"`
	Passphrase   string `json:"passphrase,omitempty"`
	NoPassphrase bool   `json:"noPassphrase,omitempty"`
}

// UnlockRequest is POST /api/v1/unlock.
type UnlockRequest struct {
	Passphrase string `json:"passphrase"`
}

// Chats lists conversations, most recent first.
func (c *Client) Chats(ctx context.Context) ([]Chat, error) {
	var out []Chat
	return out, c.do(ctx, http.MethodGet, "/api/v1/chats", nil, &out)
}

// MessagesBefore reads a conversation from its end: the newest limit
// messages with seq < before (before <= 0: the newest).
func (c *Client) MessagesBefore(ctx context.Context, contact string, before int64, limit int) (Page, error) {
	var out Page
	b := "latest"
	if before > 0 {
		b = strconv.FormatInt(before, 10)
	}
	q := url.Values{"contact": {contact}, "before": {b}, "limit": {strconv.Itoa(limit)}}
	return out, c.do(ctx, http.MethodGet, "/api/v1/messages?"+q.Encode(), nil, &out)
}

// MarkRead marks received messages up to seq upTo (0: all) as read.
func (c *Client) MarkRead(ctx context.Context, contact string, upTo int64) (ReadResult, error) {
	var out ReadResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/messages/read", ReadRequest{Contact: contact, UpTo: upTo}, &out)
}

// Search finds messages in every conversation.
func (c *Client) Search(ctx context.Context, query string, limit int) ([]SearchHit, error) {
	var out []SearchHit
	q := url.Values{"q": {query}, "limit": {strconv.Itoa(limit)}}
	return out, c.do(ctx, http.MethodGet, "/api/v1/search?"+q.Encode(), nil, &out)
}

// Verify records whether a contact's safety number was compared.
func (c *Client) Verify(ctx context.Context, contact string, verified bool) (Contact, error) {
	var out Contact
	return out, c.do(ctx, http.MethodPost, "/api/v1/contacts/verify", VerifyRequest{Contact: contact, Verified: verified}, &out)
}

// Connectivity reports how the node is connected.
func (c *Client) Connectivity(ctx context.Context) (Connectivity, error) {
	var out Connectivity
	return out, c.do(ctx, http.MethodGet, "/api/v1/connectivity", nil, &out)
}

// Init creates the profile of a node started without one.
func (c *Client) Init(ctx context.Context, req InitRequest) (Status, error) {
	var out Status
	return out, c.do(ctx, http.MethodPost, "/api/v1/init", req, &out)
}

// Unlock opens the passphrase-protected profile of a waiting node.
func (c *Client) Unlock(ctx context.Context, passphrase string) (Status, error) {
	var out Status
	return out, c.do(ctx, http.MethodPost, "/api/v1/unlock", UnlockRequest{Passphrase: passphrase}, &out)
}

// Addr returns the host:port the client talks to.
func (c *Client) Addr() string { return strings.TrimPrefix(c.base, "http://") }
