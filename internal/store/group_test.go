package store

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestUpdateShared holds the first shared transaction open while others
// queue, then checks that the queued callers ran together in the next one,
// that a failing caller lost only its own writes, and that every caller
// that succeeded has its writes committed.
func TestUpdateShared(t *testing.T) {
	s, _ := newTest(t)
	c := addContact(t, s, "acc", "A")
	insert := func(tx *Tx, i int) error {
		_, err := tx.InsertMessage(&Message{ID: strconv.Itoa(i), ContactID: c, Body: "m"})
		return err
	}
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.UpdateShared(ctx, func(tx *Tx) error {
			close(entered)
			<-release
			return insert(tx, 0)
		})
	}()
	<-entered
	const n = 20
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i-1] = s.UpdateShared(ctx, func(tx *Tx) error {
				if err := insert(tx, i); err != nil {
					return err
				}
				if i == 7 {
					return errBoom // after writing: its write must go
				}
				return nil
			})
		}()
	}
	// Wait until all n are queued behind the open transaction.
	for {
		s.group.mu.Lock()
		q := len(s.group.queue)
		s.group.mu.Unlock()
		if q == n {
			break
		}
		waitTick()
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if i+1 == 7 {
			if !errors.Is(err, errBoom) {
				t.Errorf("caller 7: %v, want its own error", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("caller %d: %v", i+1, err)
		}
	}
	if txs, calls := s.GroupStats(); txs != 2 || calls != n+1 {
		t.Errorf("GroupStats = %d transactions, %d calls; want 2, %d", txs, calls, n+1)
	}
	view(t, s, func(tx *Tx) error {
		for i := 0; i <= n; i++ {
			_, err := tx.Message(c, false, strconv.Itoa(i))
			if i == 7 {
				if err == nil {
					return fmt.Errorf("the failed caller's message was committed")
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	})
}

// TestUpdateSharedPanic: a panicking caller panics, the others sharing its
// transaction get an error, and the store goes on working.
func TestUpdateSharedPanic(t *testing.T) {
	s, _ := newTest(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		_ = s.UpdateShared(ctx, func(tx *Tx) error { panic("bug") })
	}()
	if err := s.UpdateShared(ctx, func(tx *Tx) error { return nil }); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
}

// waitTick is the pause between two checks of a condition being waited on.
func waitTick() { time.Sleep(time.Millisecond) }
