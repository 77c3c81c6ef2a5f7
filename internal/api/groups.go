package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// groupRoutes registers the group and channel calls (docs/API.md).
func (s *server) groupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/groups", s.groups)
	mux.HandleFunc("POST /api/v1/groups", s.createGroup)
	mux.HandleFunc("GET /api/v1/groups/{group}", s.group)
	mux.HandleFunc("POST /api/v1/groups/{group}/members", s.groupInvite)
	mux.HandleFunc("DELETE /api/v1/groups/{group}/members/{member}", s.groupRemove)
	mux.HandleFunc("POST /api/v1/groups/{group}/leave", s.groupLeave)
	mux.HandleFunc("POST /api/v1/groups/{group}/join", s.groupJoin)
	mux.HandleFunc("POST /api/v1/groups/{group}/rename", s.groupRename)
	mux.HandleFunc("GET /api/v1/groups/{group}/messages", s.groupMessages)
	mux.HandleFunc("POST /api/v1/groups/{group}/messages", s.groupSend)
	mux.HandleFunc("POST /api/v1/groups/{group}/files", s.groupSendFile) // files.go
	mux.HandleFunc("GET /api/v1/channels", s.channels)
	mux.HandleFunc("POST /api/v1/channels", s.createChannel)
	mux.HandleFunc("POST /api/v1/channels/follow", s.followChannel)
	mux.HandleFunc("GET /api/v1/channels/{channel}/invite", s.channelInvite)
	mux.HandleFunc("GET /api/v1/channels/{channel}/posts", s.channelPosts)
	mux.HandleFunc("POST /api/v1/channels/{channel}/posts", s.post)
	mux.HandleFunc("POST /api/v1/channels/{channel}/files", s.postFile) // groupmedia.go
}

// failGroup maps group and channel errors, then the common ones.
func (s *server) failGroup(w http.ResponseWriter, err error) {
	e := &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()}
	switch {
	case errors.Is(err, messenger.ErrUnknownGroup), errors.Is(err, messenger.ErrUnknownChannel):
		e.Status, e.Code = http.StatusNotFound, apiclient.CodeNotFound
	case errors.Is(err, messenger.ErrNotAdmin), errors.Is(err, messenger.ErrNotOwner), errors.Is(err, messenger.ErrNotMember):
		e.Status, e.Code = http.StatusForbidden, apiclient.CodeForbidden
	case errors.Is(err, messenger.ErrBadChannelLink):
		e.Code = apiclient.CodeBadInvite
	case errors.Is(err, messenger.ErrGroupFull), errors.Is(err, messenger.ErrAlreadyMember):
	default:
		s.fail(w, err)
		return
	}
	writeErr(w, e)
}

// decode reads a JSON request body into v, answering the error itself.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		s.fail(w, err)
		return false
	}
	return true
}

func (s *server) groups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.m.Groups(r.Context())
	if err != nil {
		s.failGroup(w, err)
		return
	}
	out := make([]apiclient.Group, 0, len(gs))
	for _, g := range gs {
		out = append(out, ToGroup(g))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) createGroup(w http.ResponseWriter, r *http.Request) {
	var req apiclient.NameRequest
	if !s.decode(w, r, &req) {
		return
	}
	g, err := s.m.CreateGroup(r.Context(), req.Name)
	s.groupReply(w, http.StatusCreated, g, err)
}

func (s *server) group(w http.ResponseWriter, r *http.Request) {
	g, err := s.m.Group(r.Context(), r.PathValue("group"))
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupInvite(w http.ResponseWriter, r *http.Request) {
	var req apiclient.MemberRequest
	if !s.decode(w, r, &req) {
		return
	}
	contacts := req.Contacts
	if req.Contact != "" {
		contacts = append([]string{req.Contact}, contacts...)
	}
	g, err := s.m.GroupAdd(r.Context(), r.PathValue("group"), contacts...)
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupRemove(w http.ResponseWriter, r *http.Request) {
	g, err := s.m.GroupRemove(r.Context(), r.PathValue("group"), r.PathValue("member"))
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupLeave(w http.ResponseWriter, r *http.Request) {
	g, err := s.m.GroupLeave(r.Context(), r.PathValue("group"))
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupJoin(w http.ResponseWriter, r *http.Request) {
	g, err := s.m.GroupJoin(r.Context(), r.PathValue("group"))
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupRename(w http.ResponseWriter, r *http.Request) {
	var req apiclient.NameRequest
	if !s.decode(w, r, &req) {
		return
	}
	g, err := s.m.GroupRename(r.Context(), r.PathValue("group"), req.Name)
	s.groupReply(w, http.StatusOK, g, err)
}

func (s *server) groupReply(w http.ResponseWriter, status int, g messenger.GroupInfo, err error) {
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, status, ToGroup(g))
}

func (s *server) groupSend(w http.ResponseWriter, r *http.Request) {
	var req apiclient.TextRequest
	if !s.decode(w, r, &req) {
		return
	}
	m, err := s.m.GroupSend(r.Context(), r.PathValue("group"), req.Text)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToGroupMessage(m))
}

func (s *server) groupMessages(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	g, ms, err := s.m.GroupMessages(r.Context(), r.PathValue("group"), after, limit)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	out := apiclient.GroupConversation{Group: ToGroup(g), Messages: make([]apiclient.GroupMessage, 0, len(ms))}
	for _, m := range ms {
		out.Messages = append(out.Messages, ToGroupMessage(m))
	}
	s.withGroupFiles(r.Context(), out.Messages) // groupmedia.go
	writeJSON(w, http.StatusOK, out)
}

func (s *server) channels(w http.ResponseWriter, r *http.Request) {
	cs, err := s.m.Channels(r.Context())
	if err != nil {
		s.failGroup(w, err)
		return
	}
	out := make([]apiclient.Channel, 0, len(cs))
	for _, c := range cs {
		out = append(out, ToChannel(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) createChannel(w http.ResponseWriter, r *http.Request) {
	var req apiclient.CreateChannelRequest
	if !s.decode(w, r, &req) {
		return
	}
	c, err := s.m.CreateChannel(r.Context(), req.Name, req.Private)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToChannel(c))
}

func (s *server) followChannel(w http.ResponseWriter, r *http.Request) {
	var req apiclient.FollowRequest
	if !s.decode(w, r, &req) {
		return
	}
	c, err := s.m.FollowChannel(r.Context(), req.Link)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ToChannel(c))
}

func (s *server) channelInvite(w http.ResponseWriter, r *http.Request) {
	link, err := s.m.ChannelInvite(r.Context(), r.PathValue("channel"))
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiclient.ChannelInvite{Link: link})
}

func (s *server) post(w http.ResponseWriter, r *http.Request) {
	var req apiclient.PostRequest
	if !s.decode(w, r, &req) {
		return
	}
	p, err := s.m.Post(r.Context(), r.PathValue("channel"), req.Text, req.Alert)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToChannelPost(p))
}

func (s *server) channelPosts(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	c, ps, err := s.m.ChannelPosts(r.Context(), r.PathValue("channel"), from, limit)
	if err != nil {
		s.failGroup(w, err)
		return
	}
	out := apiclient.ChannelPosts{Channel: ToChannel(c), Posts: make([]apiclient.ChannelPost, 0, len(ps))}
	for _, p := range ps {
		out.Posts = append(out.Posts, ToChannelPost(p))
	}
	s.withPostFiles(r.Context(), ps, out.Posts) // groupmedia.go
	writeJSON(w, http.StatusOK, out)
}

// ToGroup converts a group to its API form.
func ToGroup(g messenger.GroupInfo) apiclient.Group {
	out := apiclient.Group{ID: g.ID, Name: g.Name, Admin: g.Admin, Epoch: g.Epoch, Gone: g.Gone, Peers: g.Peers, Members: make([]apiclient.GroupMember, 0, len(g.Members))}
	for _, m := range g.Members {
		out.Members = append(out.Members, apiclient.GroupMember{AccountID: m.AccountID, Name: m.Name, Admin: m.Admin})
	}
	return out
}

// ToGroupMessage converts a group message to its API form.
func ToGroupMessage(m messenger.GroupMessage) apiclient.GroupMessage {
	return apiclient.GroupMessage{Seq: m.Seq, ID: m.ID, Sender: m.Sender, SenderName: m.SenderName, Outgoing: m.Outgoing, Text: m.Text, SentAt: m.SentAt.UTC(), At: m.At.UTC(), Ord: m.Ord}
}

// ToChannel converts a channel to its API form.
func ToChannel(c messenger.ChannelInfo) apiclient.Channel {
	return apiclient.Channel{ID: c.ID, Name: c.Name, Owned: c.Owned, Private: c.Private, Posts: c.Posts, LastSeq: c.LastSeq, Peers: c.Peers}
}

// ToChannelPost converts a post to its API form.
func ToChannelPost(p messenger.ChannelPost) apiclient.ChannelPost {
	return apiclient.ChannelPost{Seq: p.Seq, Text: p.Text, Alert: p.Alert, At: p.At.UTC(), Hash: p.Hash}
}
