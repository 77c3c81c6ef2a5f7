package media

// Remove deletes the chunks of file m held here (its pack, its loose
// chunks, its index): for a file that was only ever a transport, such as
// the chat history handed to a linked device (issue 17), once delivered.
// It keeps no record of the file; a file still listed by Transfers must
// not be removed this way.
func (s *Service) Remove(m *Manifest) {
	s.removeChunks(m)
}
