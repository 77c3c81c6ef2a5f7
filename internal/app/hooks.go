package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
)

// HookOptions configure the commands `samizdat up --on-alert` and
// `--on-message` run when an alert post or a message arrives, so that a
// desktop without the web page open can still ring (notify-send) and a
// server can forward alerts. docs/CLI.md documents the environment the
// commands get.
type HookOptions struct {
	// OnAlert and OnMessage are argv (program first), run without a
	// shell; nil: none.
	OnAlert   []string
	OnMessage []string
	// OnRequest runs for a new contact request (a stranger's first
	// message). It gets no name and no text, whatever Text says: nobody
	// vouched for them. Requests are collapsed like one chat's messages.
	OnRequest []string
	// Text puts the message text in SAMIZDAT_TEXT (off: the text never
	// leaves the node's process).
	Text bool
	// Timeout bounds a run; the command (and its process group) is killed
	// after it. Zero: DefaultHookTimeout.
	Timeout time.Duration
	// Interval is the least time between two runs of OnMessage for the
	// same chat; messages in between are collapsed into one run
	// (SAMIZDAT_COUNT). Zero: DefaultHookInterval. Alerts are never
	// collapsed.
	Interval time.Duration
	// Muted, if set, says that messages of a chat are not to ring now
	// (kind "chat" or "group", id as in SAMIZDAT_CHAT_ID). Alerts ignore it.
	Muted func(kind, id string) bool
}

// Defaults of HookOptions.
const (
	DefaultHookTimeout  = 10 * time.Second
	DefaultHookInterval = 10 * time.Second
	// maxHookRuns bounds the commands running at once; runs beyond it
	// wait for a slot (in their own goroutine: the node never waits).
	maxHookRuns = 8
	// maxHookText bounds SAMIZDAT_TEXT.
	maxHookText = 4096
)

// ParseHookCommand parses the value of --on-alert / --on-message: a JSON
// array of strings is argv (["notify-send","-u","critical","Alert"]);
// anything else is the path of a program run with no arguments (never
// split on spaces, never given to a shell).
func ParseHookCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty command")
	}
	if !strings.HasPrefix(s, "[") {
		return []string{s}, nil
	}
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil {
		return nil, fmt.Errorf("%q is not a JSON array of strings: %w", s, err)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%q: the array needs a program as its first element", s)
	}
	return argv, nil
}

// hookRun is one run of a hook command.
type hookRun struct {
	event string // "alert" or "message"
	kind  string // "channel", "chat" or "group"
	chat  string // name of the channel, contact or group
	id    string // channel id (hex), contact account id, group id (hex)
	from  string // sender's name
	text  string
	count int
}

func (r hookRun) env(withText bool) []string {
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	e := []string{
		"SAMIZDAT_EVENT=" + r.event,
		"SAMIZDAT_KIND=" + r.kind,
		"SAMIZDAT_CHAT=" + clean(r.chat),
		"SAMIZDAT_CHAT_ID=" + r.id,
		"SAMIZDAT_FROM=" + clean(r.from),
		"SAMIZDAT_COUNT=" + strconv.Itoa(max(r.count, 1)),
	}
	if withText {
		t := clean(r.text)
		if len(t) > maxHookText {
			t = strings.ToValidUTF8(t[:maxHookText], "")
		}
		e = append(e, "SAMIZDAT_TEXT="+t)
	}
	return e
}

// chatHook is the rate-limit state of one chat's message runs.
type chatHook struct {
	last    time.Time
	pending int
	latest  hookRun
	timer   *time.Timer
}

// hooks runs the hook commands on the messenger's events.
type hooks struct {
	o     HookOptions
	m     *messenger.Messenger
	log   *slog.Logger
	start time.Time
	ctx   context.Context
	stop  context.CancelFunc
	slots chan struct{}
	wg    sync.WaitGroup
	spawn func(argv []string, r hookRun) // h.exec; tests replace it

	mu       sync.Mutex
	closed   bool
	chats    map[string]*chatHook
	contacts map[int64]messenger.ContactInfo
	groupSeq map[string]int64
	postSeen map[string]map[uint64]bool
}

func startHooks(m *messenger.Messenger, o HookOptions, log *slog.Logger) *hooks {
	if o.Timeout <= 0 {
		o.Timeout = DefaultHookTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultHookInterval
	}
	h := &hooks{o: o, m: m, log: log, start: time.Now(), slots: make(chan struct{}, maxHookRuns),
		chats: map[string]*chatHook{}, contacts: map[int64]messenger.ContactInfo{},
		groupSeq: map[string]int64{}, postSeen: map[string]map[uint64]bool{}}
	h.spawn = h.exec
	h.ctx, h.stop = context.WithCancel(context.Background())
	if m != nil {
		ch, unsub := m.Subscribe()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer unsub()
			for {
				select {
				case <-h.ctx.Done():
					return
				case e, ok := <-ch:
					if !ok {
						return
					}
					h.handle(e)
				}
			}
		}()
	}
	return h
}

// Close stops the hooks, kills the commands still running and waits for
// them.
func (h *hooks) Close() {
	h.mu.Lock()
	h.closed = true
	for _, c := range h.chats {
		if c.timer != nil {
			c.timer.Stop()
		}
	}
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

func (h *hooks) handle(e messenger.Event) {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	switch {
	case e.Type == messenger.EventContact:
		delete(h.contacts, e.ContactID) // renamed: read again
	case e.Type == messenger.EventMessage && e.State == messenger.StateReceived && h.o.OnMessage != nil:
		h.chatMessage(ctx, e)
	case e.Type == messenger.EventGroup && e.MessageID == "" && h.o.OnMessage != nil:
		h.groupMessages(ctx, e.Group)
	case e.Type == messenger.EventRequest && e.State == messenger.RequestNew && h.o.OnRequest != nil:
		// The request's id as `samizdat requests` shows it; its sender's
		// claimed name and its text are not passed on.
		h.message("request", "", hookRun{event: "request", kind: "request", id: strconv.FormatInt(e.ContactID, 10)})
	case e.Type == messenger.EventPost && e.Alert && h.o.OnAlert != nil:
		h.alerts(ctx, e.Channel)
	}
}

func (h *hooks) chatMessage(ctx context.Context, e messenger.Event) {
	c, ok := h.contacts[e.ContactID]
	if !ok {
		cs, err := h.m.Contacts(ctx)
		if err != nil {
			h.log.Warn("hookLookupFailed", "err", err)
			return
		}
		for _, x := range cs {
			h.contacts[x.ID] = x
		}
		if c, ok = h.contacts[e.ContactID]; !ok {
			return
		}
	}
	_, msgs, _, err := h.m.MessagesBefore(ctx, c.AccountID, math.MaxInt64, 32)
	if err != nil {
		h.log.Warn("hookLookupFailed", "err", err)
		return
	}
	for _, msg := range msgs {
		if msg.ID == e.MessageID {
			h.message("chat", c.AccountID, hookRun{event: "message", kind: "chat", chat: c.Name, id: c.AccountID, from: c.Name, text: msg.Body})
		}
	}
}

func (h *hooks) groupMessages(ctx context.Context, gid string) {
	after, known := h.groupSeq[gid]
	gi, msgs, err := h.m.GroupMessages(ctx, gid, after, 0)
	if err != nil {
		h.log.Warn("hookLookupFailed", "err", err)
		return
	}
	for _, gm := range msgs {
		after = max(after, gm.Seq)
		if gm.Outgoing || (!known && gm.At.Before(h.start)) {
			continue
		}
		h.message("group", gi.ID, hookRun{event: "message", kind: "group", chat: gi.Name, id: gi.ID, from: gm.SenderName, text: gm.Text})
	}
	h.groupSeq[gid] = after
}

// alerts runs OnAlert once for every alert post of a followed channel not
// run yet (posts may arrive out of order: gaps are filled later).
func (h *hooks) alerts(ctx context.Context, cid string) {
	seen, known := h.postSeen[cid]
	var from uint64
	if known {
		for s := range seen {
			from = max(from, s)
		}
		from = max(from, 64) - 64
	} else {
		seen = map[uint64]bool{}
		h.postSeen[cid] = seen
	}
	ci, posts, err := h.m.ChannelPosts(ctx, cid, from, 0)
	if err != nil {
		h.log.Warn("hookLookupFailed", "err", err)
		return
	}
	for _, p := range posts {
		if seen[p.Seq] {
			continue
		}
		seen[p.Seq] = true
		// Old posts fetched with a channel's history do not ring.
		if ci.Owned || !p.Alert || (!known && p.At.Before(h.start.Add(-time.Minute))) {
			continue
		}
		h.run(h.o.OnAlert, hookRun{event: "alert", kind: "channel", chat: ci.Name, id: ci.ID, from: ci.Name, text: p.Text, count: 1})
	}
}

// message runs OnMessage for a chat's message now, or collapses it into
// the chat's next run when the last one was less than Interval ago.
func (h *hooks) message(kind, id string, r hookRun) {
	if kind != "request" && h.o.Muted != nil && h.o.Muted(kind, id) {
		return
	}
	key := kind + ":" + id
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	c := h.chats[key]
	if c == nil {
		c = &chatHook{}
		h.chats[key] = c
	}
	c.pending++
	c.latest = r
	if c.timer != nil {
		return // a collapsed run is due
	}
	if wait := h.o.Interval - time.Since(c.last); !c.last.IsZero() && wait > 0 {
		c.timer = time.AfterFunc(wait, func() { h.flush(key) })
		return
	}
	h.flushLocked(c)
}

// flush runs the collapsed messages of a chat.
func (h *hooks) flush(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.chats[key]; c != nil && !h.closed {
		c.timer = nil
		h.flushLocked(c)
	}
}

func (h *hooks) flushLocked(c *chatHook) {
	if c.pending == 0 {
		return
	}
	r := c.latest
	r.count = c.pending
	c.pending, c.last = 0, time.Now()
	if r.event == "request" {
		r.text = "" // never a stranger's text, even with --notify-text
		h.run(h.o.OnRequest, r)
		return
	}
	h.run(h.o.OnMessage, r)
}

func (h *hooks) run(argv []string, r hookRun) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		select {
		case h.slots <- struct{}{}:
		case <-h.ctx.Done():
			return
		}
		defer func() { <-h.slots }()
		h.spawn(argv, r)
	}()
}

// exec runs one command: no shell, the hook's environment added to the
// node's, killed (with its children) after the timeout.
func (h *hooks) exec(argv []string, r hookRun) {
	ctx, cancel := context.WithTimeout(h.ctx, h.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), r.env(h.o.Text)...)
	cmd.WaitDelay = time.Second
	killGroup(cmd)
	t0 := time.Now()
	err := cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		h.log.Warn("hookTimedOut", "event", r.event, "cmd", argv[0], "timeout", h.o.Timeout)
	case err != nil:
		h.log.Warn("hookFailed", "event", r.event, "cmd", argv[0], "err", err)
	default:
		h.log.Debug("hookRan", "event", r.event, "cmd", argv[0], "took", time.Since(t0))
	}
}
