// Package apiclient is the typed client of samizdat's local API and holds
// the API's JSON types (documented in docs/API.md). It is a leaf: it
// imports nothing of samizdat's, so the CLI, the API server and scripts
// written in Go share one definition of the wire types.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Info is the content of a profile's api.json.
type Info struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Code string `json:"code"`
}

// LoginToken answers POST /api/v1/login: the session token.
type LoginToken struct {
	Token string `json:"token"`
}

// LoginCode answers POST /api/v1/login/code: a one-time login code for the
// web app (http://<addr>/#login=<code>), valid for two minutes.
type LoginCode struct {
	Code string `json:"code"`
}

// Status is GET /api/v1/status.
type Status struct {
	AccountID      string         `json:"accountId"`
	Name           string         `json:"name"`
	PeerID         string         `json:"peerId"`
	Running        bool           `json:"running"`
	Addrs          []string       `json:"addrs"`
	ConnectedPeers []string       `json:"connectedPeers"`
	Contacts       int            `json:"contacts"`
	Outbox         map[string]int `json:"outbox"` // outgoing messages by state
	// Transports in use now and those that carried a connection this run,
	// most useful first; Bridges are the pluggable-transport bridge lines
	// this node serves; PeerCache counts the entry points it remembers;
	// TransportOrder is the order it dials transports in, learnt from what
	// worked (this run and before).
	Transports     []Transport `json:"transports,omitempty"`
	TransportOrder []string    `json:"transportOrder,omitempty"`
	Bridges        []string    `json:"bridges,omitempty"`
	PeerCache      int         `json:"peerCache,omitempty"`
	// Setup is SetupNew or SetupLocked while the node waits for its
	// profile (every other field is then empty); "" once it runs.
	Setup string `json:"setup,omitempty"`
	// Mesh is mesh mode's state; nil when the node runs without it.
	Mesh *MeshStatus `json:"mesh,omitempty"`
	// Prekeys is the state of the account's prekeys; nil if unreadable.
	Prekeys *PrekeyStatus `json:"prekeys,omitempty"`
	// MaxFileSize is the largest file this node sends or fetches, in
	// bytes (`up --max-file-size`); 0 when it carries no files.
	MaxFileSize int64 `json:"maxFileSize,omitempty"`
	// Revoked is set once this device learnt, from the account-signed
	// device list, that another device of the account removed it: it
	// reads its history but sends nothing more (issue 17).
	Revoked *Revocation `json:"revoked,omitempty"`
}

// Revocation says when this device was removed from its account and by
// which device (its peer id, and its name if known).
type Revocation struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	ByName string    `json:"byName,omitempty"`
}

// PrekeyStatus is the state of the account's prekeys: the signed prekey
// (with the last-resort ML-KEM prekey) rotates weekly, replaced ones answer
// for 30 days more, and one-time prekey pairs are handed out one per
// requester.
type PrekeyStatus struct {
	SignedPrekeyID uint32    `json:"signedPrekeyId"`
	Rotated        time.Time `json:"rotated,omitzero"` // when the current signed prekey was made
	Generations    int       `json:"generations"`      // signed prekeys that still answer (current included)
	OneTime        int       `json:"oneTime"`          // one-time pairs held, handed out or not
	Unclaimed      int       `json:"unclaimed"`        // one-time pairs not yet handed out
}

// Transport is what the node knows about one transport ("tcp", "quic",
// "wss", "obfs4"…): open connections on it now, and the last time an
// outbound connection over it succeeded in this run.
type Transport struct {
	Name   string    `json:"name"`
	Open   int       `json:"open"`
	LastOK time.Time `json:"lastOk,omitzero"`
}

// MeshStatus is mesh mode (shutdown mode): what this node carries for
// others through nearby peers.
type MeshStatus struct {
	MDNS          bool  `json:"mdns"`         // LAN discovery on
	Carried       int   `json:"carried"`      // envelopes carried for others
	CarriedBytes  int   `json:"carriedBytes"` // envelope bytes held (ours too)
	Own           int   `json:"own"`          // our envelopes waiting for a carrier or the recipient
	Receipts      int   `json:"receipts"`
	Delivered     int64 `json:"delivered"` // envelopes for us received through the mesh
	HandedToHosts int64 `json:"handedToHosts"`
	Peers         int   `json:"peers"` // mesh neighbours met
	Syncs         int64 `json:"syncs"`
	BytesSent     int64 `json:"bytesSent"`
	BytesReceived int64 `json:"bytesReceived"`
}

// Contact is one contact.
type Contact struct {
	ID           int64    `json:"id"`
	Name         string   `json:"name"`
	AccountID    string   `json:"accountId"`
	PeerID       string   `json:"peerId"`
	Addrs        []string `json:"addrs"`
	Verified     bool     `json:"verified"`
	SafetyNumber string   `json:"safetyNumber"`
}

// Message is one message of a conversation.
type Message struct {
	Seq       int64     `json:"seq"`
	ID        string    `json:"id"`
	ContactID int64     `json:"contactId"`
	Outgoing  bool      `json:"outgoing"`
	Body      string    `json:"body"`
	SentAt    time.Time `json:"sentAt"`
	At        time.Time `json:"at"`
	State     string    `json:"state"`
	// Ord is the display key: a conversation is shown in ascending ord
	// (it is seq, except for a received message placed before messages
	// its sender wrote later; it never changes).
	Ord float64 `json:"ord"`
	// File is the file the message carries (its text is the caption).
	File *FileInfo `json:"file,omitempty"`
}

// Conversation is GET /api/v1/messages.
type Conversation struct {
	Contact  Contact   `json:"contact"`
	Messages []Message `json:"messages"`
}

// Invite is GET /api/v1/invite.
type Invite struct {
	AccountID string `json:"accountId"`
	Link      string `json:"link"`
	// Short is a short invite (≤ 200 characters, no card: it is fetched
	// from this node or the DHT when the link is used), with its own
	// one-time secret.
	Short string `json:"short"`
}

// Event is one item of the GET /api/v1/events WebSocket stream.
type Event struct {
	Type      string `json:"type"`
	ContactID int64  `json:"contactId"`
	MessageID string `json:"messageId,omitempty"`
	State     string `json:"state,omitempty"`
	Channel   string `json:"channel,omitempty"` // "post" events: channel id
	Group     string `json:"group,omitempty"`   // "group" events: group id
	Alert     bool   `json:"alert,omitempty"`   // an alert post: show it at once
}

// AddContactRequest is POST /api/v1/contacts.
type AddContactRequest struct {
	Link string `json:"link"`
	Name string `json:"name,omitempty"`
}

// SendRequest is POST /api/v1/messages.
type SendRequest struct {
	Contact string `json:"contact"`
	Text    string `json:"text"`
}

// RetryRequest is POST /api/v1/messages/retry.
type RetryRequest struct {
	Contact string `json:"contact"`
	ID      string `json:"id"`
}

// MailboxHost is GET /api/v1/mailboxes: one host keeping our mail.
type MailboxHost struct {
	PeerID    string    `json:"peerId"`
	Addrs     []string  `json:"addrs"`
	MailboxID string    `json:"mailboxId"`
	LastCheck time.Time `json:"lastCheck"`
	LastOK    time.Time `json:"lastOk"`
	LastError string    `json:"lastError,omitempty"`
	Fetched   int       `json:"fetched"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
	Status  int    `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeBadRequest     = "bad_request"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeNotFound       = "not_found"
	CodeExists         = "exists"
	CodeBadInvite      = "bad_invite"
	CodeUnknownContact = "unknown_contact"
	// CodeUnknownRequest: the id or account id names no pending contact
	// request.
	CodeUnknownRequest = "unknown_request"
	// CodeInviteUnreachable: the card of a short invite could be fetched
	// neither from the inviter nor from the DHT.
	CodeInviteUnreachable = "invite_unreachable"
	// CodeInviteMismatch: the card fetched for a short invite is not the
	// account's the link names.
	CodeInviteMismatch = "invite_mismatch"
	CodeInternal       = "internal"
	// CodeDeviceRevoked (403): this device was removed from its account
	// (Status.Revoked); it can no longer send.
	CodeDeviceRevoked = "device_revoked"
)

// ErrNoDaemon is returned by Load when no node runs on the profile.
var ErrNoDaemon = errors.New("no samizdat node is running on this profile")

// CallTimeout bounds an ordinary API call whose context has no deadline of
// its own. Calls that move a file (SendFile, GroupSendFile, SaveFile,
// Upload, FileContent) are not bounded by it: a 2 GiB file takes longer
// than any fixed limit on a slow disk, so only their context ends them.
const CallTimeout = 60 * time.Second

// Client talks to one node's local API.
type Client struct {
	base  string
	token string
	hc    *http.Client
	// timeout is CallTimeout; tests shorten it.
	timeout time.Duration
}

// New returns a client for the API at addr (host:port) with token.
func New(addr, token string) *Client {
	// No http.Client.Timeout: it would cut off a long upload or download
	// mid-body. Ordinary calls get a deadline from call instead.
	return &Client{base: "http://" + addr, token: token, hc: &http.Client{}, timeout: CallTimeout}
}

// call returns ctx bounded by the client's call timeout, unless ctx
// already has a deadline.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Login trades the one-time login code of a web app address
// (http://<addr>/#login=<code>, as samizdat open prints it) for the
// session token, as the web app does, and returns a client with it.
func Login(ctx context.Context, loginURL string) (*Client, error) {
	base, code, ok := strings.Cut(loginURL, "/#login=")
	if !ok || !strings.HasPrefix(base, "http://") {
		return nil, fmt.Errorf("not a samizdat login address: %q", loginURL)
	}
	c := New(strings.TrimPrefix(base, "http://"), "")
	var out LoginToken
	if err := c.do(ctx, "POST", "/api/v1/login", LoginRequest{Code: code}, &out); err != nil {
		return nil, err
	}
	c.token = out.Token
	return c, nil
}

// Load reads a profile's api.json and returns a client if its node
// answers; ErrNoDaemon if none runs.
func Load(ctx context.Context, apiFile string) (*Client, error) {
	b, err := os.ReadFile(apiFile)
	if err != nil {
		return nil, ErrNoDaemon
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return nil, ErrNoDaemon
	}
	c := New(info.Addr, info.Token)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.Status(pctx); err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, ErrNoDaemon
	}
	return c, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	return c.doLong(ctx, method, path, in, out)
}

// doLong is do without the call timeout, for calls that move a file.
func (c *Client) doLong(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(e); err != nil || e.Message == "" {
			e.Code, e.Message = CodeInternal, fmt.Sprintf("local API: %s", resp.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// LoginCode asks for a one-time login code for the web app.
func (c *Client) LoginCode(ctx context.Context) (string, error) {
	var out LoginCode
	err := c.do(ctx, "POST", "/api/v1/login/code", struct{}{}, &out)
	return out.Code, err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/api/v1/status", nil, &s)
}

// Invite returns a fresh invite link.
func (c *Client) Invite(ctx context.Context) (Invite, error) {
	var inv Invite
	return inv, c.do(ctx, http.MethodGet, "/api/v1/invite", nil, &inv)
}

// Contacts lists contacts.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var cs []Contact
	return cs, c.do(ctx, http.MethodGet, "/api/v1/contacts", nil, &cs)
}

// AddContact adds a contact from an invite link.
func (c *Client) AddContact(ctx context.Context, link, name string) (Contact, error) {
	var out Contact
	return out, c.do(ctx, http.MethodPost, "/api/v1/contacts", AddContactRequest{Link: link, Name: name}, &out)
}

// Send queues a message; it returns once the message is stored.
func (c *Client) Send(ctx context.Context, contact, text string) (Message, error) {
	var out Message
	return out, c.do(ctx, http.MethodPost, "/api/v1/messages", SendRequest{Contact: contact, Text: text}, &out)
}

// Mailboxes lists the hosts keeping our mail and how fetching went.
func (c *Client) Mailboxes(ctx context.Context) ([]MailboxHost, error) {
	var out []MailboxHost
	return out, c.do(ctx, http.MethodGet, "/api/v1/mailboxes", nil, &out)
}

// Retry sends a failed message again.
func (c *Client) Retry(ctx context.Context, contact, id string) (Message, error) {
	var out Message
	return out, c.do(ctx, http.MethodPost, "/api/v1/messages/retry", RetryRequest{Contact: contact, ID: id}, &out)
}

// Messages returns a conversation's messages with local sequence > after.
func (c *Client) Messages(ctx context.Context, contact string, after int64) (Conversation, error) {
	var out Conversation
	q := url.Values{"contact": {contact}, "after": {strconv.FormatInt(after, 10)}}
	return out, c.do(ctx, http.MethodGet, "/api/v1/messages?"+q.Encode(), nil, &out)
}

// Events streams events until ctx ends or the connection drops.
func (c *Client) Events(ctx context.Context, f func(Event)) error {
	u := "ws" + c.base[len("http"):] + "/api/v1/events"
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}}})
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var e Event
		if json.Unmarshal(b, &e) == nil {
			f(e)
		}
	}
}
