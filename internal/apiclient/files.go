package apiclient

import (
	"context"
	"net/http"
)

// Transfer is a file sent or received (GET /api/v1/files). State is
// sending (ours, served to whoever asks), fetching, failed (retried
// later; Error says why) or complete.
type Transfer struct {
	MessageID string `json:"messageId"`
	ContactID int64  `json:"contactId"`
	Group     string `json:"group,omitempty"` // hex group id: a file sent to a group
	Incoming  bool   `json:"incoming"`
	Name      string `json:"name"`
	MIME      string `json:"mime"`
	Size      int64  `json:"size"`
	Done      int    `json:"chunksDone"`
	Total     int    `json:"chunksTotal"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	// Files sent: how many data chunks this node has sent (each counted
	// once: for a file to a contact, what the recipient has fetched), and
	// the bytes of the file's chunks sent in all. 0 for received files.
	ChunksServed int   `json:"chunksServed"`
	BytesServed  int64 `json:"bytesServed"`
	// HostState, for a file sent to a contact that was offline: where it
	// stands with the contact's mailbox hosts ("depositing", "deposited",
	// "over-quota": too large for them, it waits at the sender), and
	// HostError why it waits.
	HostState string `json:"hostState,omitempty"`
	HostError string `json:"hostError,omitempty"`
	// Holders, for a file sent to a group: how many of the other
	// members hold it, are fetching it, are offline (it waits for them
	// at the sender and at the members who have it); absent until the
	// members were first asked.
	Holders *FileHolders `json:"holders,omitempty"`
}

// FileHolders is where a file sent to a group stands with its members:
// of Members (the group's other members), Done hold every chunk,
// Fetching were reached at the last check without all of it, Offline
// could not be reached then; the rest were not asked yet.
type FileHolders struct {
	Members  int `json:"members"`
	Done     int `json:"done"`
	Fetching int `json:"fetching"`
	Offline  int `json:"offline"`
}

// SendFileRequest is the body of POST /api/v1/files: the node reads the
// file at Path (on its own disk) and sends it with Text as the caption.
type SendFileRequest struct {
	Contact string `json:"contact"`
	Path    string `json:"path"`
	Text    string `json:"text,omitempty"`
}

// GroupFileRequest is the body of POST /api/v1/groups/{group}/files: the
// node reads the file at Path and sends it to the group with Text as the
// caption.
type GroupFileRequest struct {
	Path string `json:"path"`
	Text string `json:"text,omitempty"`
}

// SaveFileRequest is the body of POST /api/v1/files/save: the node writes
// the file of MessageID to Path, which must not exist.
type SaveFileRequest struct {
	MessageID string `json:"messageId"`
	Path      string `json:"path"`
}

// SendFile sends the file at path (read by the node) to a contact.
func (c *Client) SendFile(ctx context.Context, contact, path, text string) (Message, error) {
	var out Message
	return out, c.doLong(ctx, http.MethodPost, "/api/v1/files", SendFileRequest{Contact: contact, Path: path, Text: text}, &out)
}

// Files lists the transfers with their progress.
func (c *Client) Files(ctx context.Context) ([]Transfer, error) {
	var out []Transfer
	return out, c.do(ctx, http.MethodGet, "/api/v1/files", nil, &out)
}

// SaveFile writes a received file to path.
func (c *Client) SaveFile(ctx context.Context, msgID, path string) error {
	return c.doLong(ctx, http.MethodPost, "/api/v1/files/save", SaveFileRequest{MessageID: msgID, Path: path}, nil)
}

// PostFile posts the file at path (read by the node) on a channel we
// own: it is uploaded once, the subscribers fetch it from each other.
func (c *Client) PostFile(ctx context.Context, ref, path, text string, alert bool) (ChannelPost, error) {
	var out ChannelPost
	return out, c.do(ctx, http.MethodPost, channelPath(ref, "files"), PostFileRequest{Path: path, Text: text, Alert: alert}, &out)
}

// GroupSendFile sends the file at path (read by the node) to a group: it
// is uploaded once, the members fetch it from each other.
func (c *Client) GroupSendFile(ctx context.Context, ref, path, text string) (GroupMessage, error) {
	var out GroupMessage
	return out, c.doLong(ctx, http.MethodPost, groupPath(ref, "files"), GroupFileRequest{Path: path, Text: text}, &out)
}
