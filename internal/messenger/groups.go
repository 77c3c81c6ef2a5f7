package messenger

import "github.com/samizdat-im/samizdat/internal/store"

// joinGroup subscribes to a group's topic.
func (m *Messenger) joinGroup(g *store.Group) {}
