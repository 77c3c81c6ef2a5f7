package messenger

// Event types.
const (
	EventMessage = "message" // a message was stored (sent or received)
	EventState   = "state"   // an outgoing message changed state
	EventContact = "contact" // a contact was added or changed
	EventPost    = "post"    // a channel post was stored (Channel, Alert)
	EventGroup   = "group"   // a group message or change was stored (Group)
	EventRevoked = "revoked" // this device learnt it was revoked (revoked.go)
)

// Event tells subscribers that something changed; they read the details
// from the store (events may be dropped for slow subscribers, never the
// data).
type Event struct {
	Type      string `json:"type"`
	ContactID int64  `json:"contactId"`
	MessageID string `json:"messageId,omitempty"`
	State     string `json:"state,omitempty"`
	Channel   string `json:"channel,omitempty"` // channel id (hex)
	Group     string `json:"group,omitempty"`   // group id (hex)
	Alert     bool   `json:"alert,omitempty"`   // an alert post: show at once
}

// Subscribe returns a channel of events and a function to stop them. A
// subscriber that does not keep up misses events (never data).
func (m *Messenger) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	m.subsMu.Lock()
	select {
	case <-m.closed:
		close(ch)
		m.subsMu.Unlock()
		return ch, func() {}
	default:
	}
	m.subs[ch] = struct{}{}
	m.subsMu.Unlock()
	return ch, func() {
		m.subsMu.Lock()
		defer m.subsMu.Unlock()
		if _, ok := m.subs[ch]; ok {
			delete(m.subs, ch)
			close(ch)
		}
	}
}

func (m *Messenger) emit(e Event) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for ch := range m.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
