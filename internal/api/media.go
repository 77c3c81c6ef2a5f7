package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// uploadPath takes a file as its body, so its body limit is the largest
// file rather than maxBody (see bodyLimit).
const uploadPath = "/api/v1/files/upload"

func (s *server) mediaRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+uploadPath, s.upload)
	mux.HandleFunc("GET /api/v1/files/content", s.fileContent)
	mux.HandleFunc("POST /api/v1/files/fetch", s.fetchFile)
}

// bodyLimit is the largest request body r may carry.
func (s *server) bodyLimit(r *http.Request) int64 {
	if r.URL.Path == uploadPath && s.m != nil && s.m.Media() != nil {
		return s.m.Media().MaxFileSize() + 1
	}
	return maxBody
}

// upload sends the request body as a file: POST
// /api/v1/files/upload?contact=&name=[&text=][&durationMs=][&waveform=]
// (group= instead of contact= sends it to a group, groupmedia.go),
// Content-Type the file's type, Content-Length its exact size.
func (s *server) upload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.ContentLength < 0 {
		writeErr(w, &apiclient.Error{Status: http.StatusLengthRequired, Code: apiclient.CodeBadRequest, Message: "the upload needs a Content-Length"})
		return
	}
	up := messenger.Upload{Name: q.Get("name"), Size: r.ContentLength, Body: r.Body, MIME: r.Header.Get("Content-Type")}
	if up.Name == "" {
		up.Name = "file"
	}
	if d := q.Get("durationMs"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			s.failFile(w, fmt.Errorf("%w: durationMs must be a whole number of milliseconds", media.ErrBadManifest))
			return
		}
		up.Meta.DurationMS = n
	}
	if wf := q.Get("waveform"); wf != "" {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(wf, "="))
		if err != nil {
			s.failFile(w, fmt.Errorf("%w: waveform must be base64url", media.ErrBadManifest))
			return
		}
		up.Meta.Waveform = b
	}
	if g := q.Get("group"); g != "" {
		s.groupUpload(w, r, g, up)
		return
	}
	if c := q.Get("channel"); c != "" {
		s.channelUpload(w, r, c, up)
		return
	}
	msg, err := s.m.SendUpload(r.Context(), q.Get("contact"), up, q.Get("text"))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, media.ErrBadManifest) || errors.As(err, &mbe) {
			writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
			return
		}
		s.failFile(w, err)
		return
	}
	out := []apiclient.Message{ToMessage(msg)}
	s.withFiles(r.Context(), out)
	writeJSON(w, http.StatusCreated, out[0])
}

// inlineTypes are the types the web app shows in the page (images, voice
// notes); any other file is served as a download.
var inlineTypes = map[string]bool{
	"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true,
	"audio/webm": true, "audio/ogg": true, "audio/mpeg": true, "audio/mp4": true, "audio/wav": true,
	"video/webm": true, "video/mp4": true,
}

// fileContent serves the plaintext of a complete file: GET
// /api/v1/files/content?id=MESSAGE-ID. The bytes are the sender's, so
// the page may not run them: nosniff, a sandboxing CSP, and anything not
// an image or audio as an attachment.
func (s *server) fileContent(w http.ResponseWriter, r *http.Request) {
	svc := s.m.Media()
	if svc == nil {
		s.failFile(w, messenger.ErrNoMedia)
		return
	}
	id := r.URL.Query().Get("id")
	m, err := svc.Manifest(r.Context(), id)
	if err != nil {
		s.failFile(w, err)
		return
	}
	base, params, _ := mime.ParseMediaType(m.MIME)
	ct, disp := "application/octet-stream", "attachment"
	if inlineTypes[base] {
		ct, disp = mime.FormatMediaType(base, params), "inline"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": m.Name}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	// Incomplete files are refused before the first byte goes out.
	if _, missing, err := media.Missing(svc.Chunks(), m); err != nil || len(missing) > 0 {
		h.Del("Content-Length")
		h.Del("Content-Disposition")
		s.failFile(w, media.ErrIncomplete)
		return
	}
	if err := media.WriteTo(svc.Chunks(), m, w); err != nil {
		s.log.Warn("fileContentFailed", "err", err)
	}
}

func (s *server) fetchFile(w http.ResponseWriter, r *http.Request) {
	var req apiclient.FetchFileRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	svc := s.m.Media()
	if svc == nil {
		s.failFile(w, messenger.ErrNoMedia)
		return
	}
	if err := svc.Request(r.Context(), req.MessageID); err != nil {
		s.failFile(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// withFileLabels fills in File for the chats' last messages that carry
// one, without the preview and waveform: the chat list names the file.
func (s *server) withFileLabels(ctx context.Context, chats []apiclient.Chat) {
	var last []apiclient.Message
	for _, c := range chats {
		if c.Last != nil {
			last = append(last, *c.Last)
		}
	}
	s.withFiles(ctx, last)
	i := 0
	for _, c := range chats {
		if c.Last != nil {
			if f := last[i].File; f != nil {
				f.Thumbnail, f.Waveform = nil, nil
				c.Last.File = f
			}
			i++
		}
	}
}

// withFiles fills in File for the messages that carry one. A node without
// files, or a failed lookup, leaves them as they are: the text still shows.
func (s *server) withFiles(ctx context.Context, msgs []apiclient.Message) {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	fs := s.fileInfos(ctx, ids)
	for i := range msgs {
		msgs[i].File = fs[msgs[i].ID]
	}
}

// fileInfos looks up the files of the messages ids (1:1, group or
// channel): those that carry none are missing from the map.
func (s *server) fileInfos(ctx context.Context, ids []string) map[string]*apiclient.FileInfo {
	svc := s.m.Media()
	if svc == nil || len(ids) == 0 {
		return nil
	}
	ms, err := svc.Manifests(ctx, ids)
	if err != nil {
		s.log.Warn("fileLookupFailed", "err", err)
		return nil
	}
	out := make(map[string]*apiclient.FileInfo, len(ms))
	for id, m := range ms {
		f := &apiclient.FileInfo{Name: m.Name, MIME: m.MIME, Size: m.Size, Width: m.Width, Height: m.Height,
			Thumbnail: m.Thumbnail, DurationMS: m.DurationMS}
		for _, v := range m.Waveform {
			f.Waveform = append(f.Waveform, int(v))
		}
		out[id] = f
	}
	return out
}
