package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Group is a private group (GET /api/v1/groups and others).
type Group struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Members []GroupMember `json:"members"`
	Admin   bool          `json:"admin"`
	Epoch   uint32        `json:"epoch"`
	Gone    bool          `json:"gone"`
	Peers   int           `json:"peers"` // members' nodes on the group's topic now
}

// GroupMember is one member of a group.
type GroupMember struct {
	AccountID string `json:"accountId"`
	Name      string `json:"name"`
	Admin     bool   `json:"admin"`
}

// GroupMessage is one message of a group.
type GroupMessage struct {
	Seq        int64     `json:"seq"`
	ID         string    `json:"id"`
	Sender     string    `json:"sender"`
	SenderName string    `json:"senderName"`
	Outgoing   bool      `json:"outgoing"`
	Text       string    `json:"text"`
	SentAt     time.Time `json:"sentAt"`
	At         time.Time `json:"at"`
	Ord        float64   `json:"ord"` // display key, as Message.Ord
	// File is the file the message carries (its text is the caption),
	// as Message.File.
	File *FileInfo `json:"file,omitempty"`
}

// GroupConversation is GET /api/v1/groups/{group}/messages.
type GroupConversation struct {
	Group    Group          `json:"group"`
	Messages []GroupMessage `json:"messages"`
}

// Channel is a broadcast channel (GET /api/v1/channels and others).
type Channel struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Owned   bool   `json:"owned"`
	Private bool   `json:"private"`
	Posts   int    `json:"posts"`
	LastSeq int64  `json:"lastSeq"`
	Peers   int    `json:"peers"` // peers on the channel's topic now (listing only)
}

// ChannelPost is one post of a channel.
type ChannelPost struct {
	Seq   uint64    `json:"seq"`
	Text  string    `json:"text"`
	Alert bool      `json:"alert"`
	At    time.Time `json:"at"`
	Hash  string    `json:"hash"`
	// File is the file the post carries (its text is the caption), as
	// Message.File; the files calls know it by Hash.
	File *FileInfo `json:"file,omitempty"`
}

// ChannelPosts is GET /api/v1/channels/{channel}/posts.
type ChannelPosts struct {
	Channel Channel       `json:"channel"`
	Posts   []ChannelPost `json:"posts"`
}

// ChannelInvite is GET /api/v1/channels/{channel}/invite.
type ChannelInvite struct {
	Link string `json:"link"`
}

// NameRequest is POST /api/v1/groups and POST /api/v1/groups/{group}/rename.
type NameRequest struct {
	Name string `json:"name"`
}

// MemberRequest is POST /api/v1/groups/{group}/members.
type MemberRequest struct {
	Contact string `json:"contact,omitempty"`
	// Contacts adds several at once (with Contact, if set): one request,
	// as few membership ops as their number needs.
	Contacts []string `json:"contacts,omitempty"`
}

// TextRequest is POST /api/v1/groups/{group}/messages.
type TextRequest struct {
	Text string `json:"text"`
}

// CreateChannelRequest is POST /api/v1/channels.
type CreateChannelRequest struct {
	Name    string `json:"name"`
	Private bool   `json:"private"`
}

// FollowRequest is POST /api/v1/channels/follow.
type FollowRequest struct {
	Link string `json:"link"`
}

// PostRequest is POST /api/v1/channels/{channel}/posts.
type PostRequest struct {
	Text  string `json:"text"`
	Alert bool   `json:"alert"`
}

// PostFileRequest is POST /api/v1/channels/{channel}/files: the node
// reads the file at Path and posts it with Text as its caption.
type PostFileRequest struct {
	Path  string `json:"path"`
	Text  string `json:"text,omitempty"`
	Alert bool   `json:"alert,omitempty"`
}

func groupPath(ref string, rest ...string) string {
	p := "/api/v1/groups/" + url.PathEscape(ref)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

func channelPath(ref string, rest ...string) string {
	p := "/api/v1/channels/" + url.PathEscape(ref)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Groups lists our groups.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var out []Group
	return out, c.do(ctx, http.MethodGet, "/api/v1/groups", nil, &out)
}

// CreateGroup creates a group with us as its admin.
func (c *Client) CreateGroup(ctx context.Context, name string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodPost, "/api/v1/groups", NameRequest{Name: name}, &out)
}

// Group returns one group by id or name.
func (c *Client) Group(ctx context.Context, ref string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodGet, groupPath(ref), nil, &out)
}

// GroupInvite adds contacts to a group (admins only), all in one request.
func (c *Client) GroupInvite(ctx context.Context, ref string, contacts ...string) (Group, error) {
	var out Group
	req := MemberRequest{Contacts: contacts}
	if len(contacts) == 1 {
		req = MemberRequest{Contact: contacts[0]} // as before: older daemons know only this
	}
	return out, c.do(ctx, http.MethodPost, groupPath(ref, "members"), req, &out)
}

// GroupRemove removes a member (a contact name or an account id; admins only).
func (c *Client) GroupRemove(ctx context.Context, ref, member string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodDelete, groupPath(ref, "members", member), nil, &out)
}

// GroupLeave leaves a group.
func (c *Client) GroupLeave(ctx context.Context, ref string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodPost, groupPath(ref, "leave"), nil, &out)
}

// GroupJoin catches up on a group we were invited to (history from the
// other members) and returns it.
func (c *Client) GroupJoin(ctx context.Context, ref string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodPost, groupPath(ref, "join"), nil, &out)
}

// GroupRename renames a group (admins only).
func (c *Client) GroupRename(ctx context.Context, ref, name string) (Group, error) {
	var out Group
	return out, c.do(ctx, http.MethodPost, groupPath(ref, "rename"), NameRequest{Name: name}, &out)
}

// GroupSend sends a message to a group.
func (c *Client) GroupSend(ctx context.Context, ref, text string) (GroupMessage, error) {
	var out GroupMessage
	return out, c.do(ctx, http.MethodPost, groupPath(ref, "messages"), TextRequest{Text: text}, &out)
}

// GroupMessages returns a group's messages with local sequence > after.
func (c *Client) GroupMessages(ctx context.Context, ref string, after int64) (GroupConversation, error) {
	var out GroupConversation
	return out, c.do(ctx, http.MethodGet, groupPath(ref, "messages")+"?after="+strconv.FormatInt(after, 10), nil, &out)
}

// Channels lists the channels we own or follow.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	var out []Channel
	return out, c.do(ctx, http.MethodGet, "/api/v1/channels", nil, &out)
}

// CreateChannel creates a channel owned by a fresh key.
func (c *Client) CreateChannel(ctx context.Context, name string, private bool) (Channel, error) {
	var out Channel
	return out, c.do(ctx, http.MethodPost, "/api/v1/channels", CreateChannelRequest{Name: name, Private: private}, &out)
}

// ChannelInvite returns a channel's invite link.
func (c *Client) ChannelInvite(ctx context.Context, ref string) (ChannelInvite, error) {
	var out ChannelInvite
	return out, c.do(ctx, http.MethodGet, channelPath(ref, "invite"), nil, &out)
}

// FollowChannel follows a channel from its link.
func (c *Client) FollowChannel(ctx context.Context, link string) (Channel, error) {
	var out Channel
	return out, c.do(ctx, http.MethodPost, "/api/v1/channels/follow", FollowRequest{Link: link}, &out)
}

// Post publishes a post on a channel we own.
func (c *Client) Post(ctx context.Context, ref, text string, alert bool) (ChannelPost, error) {
	var out ChannelPost
	return out, c.do(ctx, http.MethodPost, channelPath(ref, "posts"), PostRequest{Text: text, Alert: alert}, &out)
}

// ChannelPosts returns a channel's posts from sequence number from on.
func (c *Client) ChannelPosts(ctx context.Context, ref string, from uint64) (ChannelPosts, error) {
	var out ChannelPosts
	return out, c.do(ctx, http.MethodGet, channelPath(ref, "posts")+"?from="+strconv.FormatUint(from, 10), nil, &out)
}
