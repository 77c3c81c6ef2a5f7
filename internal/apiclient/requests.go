package apiclient

import (
	"context"
	"net/http"
	"time"
)

// Request is a pending contact request: a stranger's first contact
// (GET /api/v1/requests), shown in no chat until accepted.
type Request struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"` // the name on its card
	AccountID    string    `json:"accountId"`
	SafetyNumber string    `json:"safetyNumber"`
	Received     time.Time `json:"received"`
	Bytes        int64     `json:"bytes"` // what it holds: card, messages, file manifests
	Messages     []Message `json:"messages"`
}

// RequestAction is POST /api/v1/requests/accept and /decline: Request is
// its id or account id; Name (accept only, optional) names the contact.
type RequestAction struct {
	Request string `json:"request"`
	Name    string `json:"name,omitempty"`
}

// Declined is the answer to POST /api/v1/requests/decline.
type Declined struct {
	Request string    `json:"request"`
	Until   time.Time `json:"until"` // its account's messages are refused until then
}

// Requests lists the pending contact requests, oldest first.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var out []Request
	return out, c.do(ctx, http.MethodGet, "/api/v1/requests", nil, &out)
}

// AcceptRequest makes a pending request a contact (name: empty for the
// name on its card).
func (c *Client) AcceptRequest(ctx context.Context, ref, name string) (Contact, error) {
	var out Contact
	return out, c.do(ctx, http.MethodPost, "/api/v1/requests/accept", RequestAction{Request: ref, Name: name}, &out)
}

// DeclineRequest deletes a pending request and refuses its account for a
// while.
func (c *Client) DeclineRequest(ctx context.Context, ref string) (Declined, error) {
	var out Declined
	return out, c.do(ctx, http.MethodPost, "/api/v1/requests/decline", RequestAction{Request: ref}, &out)
}
