package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkInsertMessage measures the messenger's hot path: one Update that
// stores a message, saves the ratchet state and queues the envelope.
func BenchmarkInsertMessage(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	c := addContact(b, s, "acc", "Bench")
	body := "a typical chat message of some sixty bytes, with a few words"
	state := bytes.Repeat([]byte{7}, 1024)  // ratchet state with some skipped keys
	payload := bytes.Repeat([]byte{9}, 512) // padded envelope
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		err := s.Update(ctx, func(tx *Tx) error {
			id := fmt.Sprintf("%016x", i)
			if _, err := tx.InsertMessage(&Message{ID: id, ContactID: c, Outgoing: true, Body: body}); err != nil {
				return err
			}
			if err := tx.PutSession(c, state); err != nil {
				return err
			}
			return tx.Enqueue(OutboxItem{MessageID: id, ContactID: c, Payload: payload})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkSearch measures an FTS query over 10,000 messages.
func BenchmarkSearch(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	c := addContact(b, s, "acc", "Bench")
	words := []string{"river", "bridge", "station", "привет", "سلام", "meeting", "tomorrow", "key"}
	update(b, s, func(tx *Tx) error {
		for i := range 10000 {
			body := fmt.Sprintf("message %d about the %s and the %s", i, words[i%len(words)], words[(i/8)%len(words)])
			if _, err := tx.InsertMessage(&Message{ID: fmt.Sprint(i), ContactID: c, Body: body}); err != nil {
				return err
			}
		}
		_, err := tx.IndexPending(0)
		return err
	})
	b.ResetTimer()
	for b.Loop() {
		view(b, s, func(tx *Tx) error {
			_, err := tx.Search("river stat", 50)
			return err
		})
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	salt := make([]byte, SaltSize)
	for b.Loop() {
		DeriveKey([]byte("correct horse battery staple"), salt)
	}
}
