package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// FileInfo describes the file a message carries (Message.File): what the
// chat shows before the file itself is here.
type FileInfo struct {
	Name   string `json:"name"`
	MIME   string `json:"mime"`
	Size   int64  `json:"size"`
	Width  int    `json:"width,omitempty"`  // image dimensions (upright)
	Height int    `json:"height,omitempty"` //
	// Thumbnail is a small JPEG preview of an image (base64 in JSON).
	Thumbnail []byte `json:"thumbnail,omitempty"`
	// DurationMS and Waveform describe a voice note: its length and its
	// peak levels (0-255) over equal slices of it, as its sender says.
	DurationMS int   `json:"durationMs,omitempty"`
	Waveform   []int `json:"waveform,omitempty"`
}

// UploadRequest is a file sent from bytes the client holds (POST
// /api/v1/files/upload): the body is the file, the rest goes in the query.
type UploadRequest struct {
	Contact    string
	Name       string
	MIME       string // Content-Type of the body ("" to let the node guess)
	Text       string // caption
	DurationMS int    // voice notes
	Waveform   []byte // voice notes: at most 256 levels
}

// Query is the request's query string.
func (u UploadRequest) Query() string {
	q := url.Values{"contact": {u.Contact}, "name": {u.Name}}
	if u.Text != "" {
		q.Set("text", u.Text)
	}
	if u.DurationMS > 0 {
		q.Set("durationMs", strconv.Itoa(u.DurationMS))
	}
	if len(u.Waveform) > 0 {
		q.Set("waveform", base64.RawURLEncoding.EncodeToString(u.Waveform))
	}
	return q.Encode()
}

// FetchFileRequest is the body of POST /api/v1/files/fetch.
type FetchFileRequest struct {
	MessageID string `json:"messageId"`
}

// Upload sends size bytes read from body as a file to a contact.
func (c *Client) Upload(ctx context.Context, req UploadRequest, body io.Reader, size int64) (Message, error) {
	var out Message
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/files/upload?"+req.Query(), body)
	if err != nil {
		return out, err
	}
	hr.ContentLength = size
	if req.MIME != "" {
		hr.Header.Set("Content-Type", req.MIME)
	}
	return out, c.raw(hr, &out)
}

// FetchFile asks the node to fetch a file now, whatever the automatic
// download limit (Settings.AutoDownloadMB).
func (c *Client) FetchFile(ctx context.Context, msgID string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/files/fetch", FetchFileRequest{MessageID: msgID}, nil)
}

// FileContent returns the bytes of a complete file (sent or received).
func (c *Client) FileContent(ctx context.Context, msgID string) ([]byte, string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/files/content?"+url.Values{"id": {msgID}}.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	var b []byte
	var ct string
	err = c.raw(hr, func(resp *http.Response) error {
		ct = resp.Header.Get("Content-Type")
		b, err = io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("file content: %w", err)
		}
		return nil
	})
	return b, ct, err
}

// raw sends a prepared request with the token; out is a JSON target, or a
// func reading the response itself.
func (c *Client) raw(req *http.Request, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
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
	if f, ok := out.(func(*http.Response) error); ok {
		return f(resp)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
