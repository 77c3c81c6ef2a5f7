package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestWALLayoutMapping checks the offset arithmetic of the aligned WAL
// against the layout it documents.
func TestWALLayoutMapping(t *testing.T) {
	for _, tc := range []struct {
		off, phys, n int64
		part         int
		first        bool
	}{
		{0, 0, walHeader, partWALHeader, true},
		{8, 8, walHeader - 8, partWALHeader, false},
		{walHeader, walBlock, walFrameHdr, partFrameHeader, true},
		{walHeader + walFrameHdr, 2 * walBlock, walBlock, partPage, true},
		{walHeader + walFrameHdr + 100, 2*walBlock + 100, walBlock - 100, partPage, false},
		{walHeader + walFrame, 3 * walBlock, walFrameHdr, partFrameHeader, true},
		{walHeader + 5*walFrame + walFrameHdr, 12 * walBlock, walBlock, partPage, true},
	} {
		phys, n, part, first := segment(tc.off)
		if phys != tc.phys || n != tc.n || part != tc.part || first != tc.first {
			t.Errorf("segment(%d) = %d, %d, %d, %v; want %d, %d, %d, %v", tc.off, phys, n, part, first, tc.phys, tc.n, tc.part, tc.first)
		}
	}
	// Every size SQLite can see maps to a physical size of whole blocks
	// that maps back to it, or to the largest size of whole parts below
	// it (a part cut short reads as absent, as a torn write would).
	for size := int64(0); size < walHeader+4*walFrame; size++ {
		phys := physicalSize(size)
		if phys%walBlock != 0 {
			t.Fatalf("physicalSize(%d) = %d: not whole blocks", size, phys)
		}
		back := logicalSize(phys)
		if back < size {
			t.Fatalf("logicalSize(physicalSize(%d)) = %d: smaller", size, back)
		}
		if physicalSize(back) != phys {
			t.Fatalf("size %d: physical %d, back %d, physical again %d", size, phys, back, physicalSize(back))
		}
	}
	for _, size := range []int64{0, walHeader, walHeader + walFrameHdr, walHeader + walFrame, walHeader + 3*walFrame + walFrameHdr} {
		if got := logicalSize(physicalSize(size)); got != size {
			t.Errorf("logicalSize(physicalSize(%d)) = %d", size, got)
		}
	}
}

// insertN commits messages first..first+n-1, one transaction each.
func insertN(t testing.TB, s *Store, c int64, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		update(t, s, func(tx *Tx) error {
			_, err := tx.InsertMessage(&Message{ID: strconv.Itoa(i), ContactID: c, Body: fmt.Sprintf("message %d", i)})
			return err
		})
	}
}

// checkMessages fails unless messages 0..n-1 are all in the database.
func checkMessages(t *testing.T, path string, c int64, n int) {
	t.Helper()
	s, err := Open(path, testKey(1))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		for i := range n {
			if _, err := tx.Message(c, false, strconv.Itoa(i)); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	})
}

// crashImage copies the database and its WAL while s is open, as a crash
// would leave them (nothing checkpointed, the WAL not removed).
func crashImage(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "samizdat.db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "samizdat.db")
}

func TestWALCrashImage(t *testing.T) {
	s, path := newTest(t)
	c := addContact(t, s, "acc", "A")
	insertN(t, s, c, 0, 200)
	img := crashImage(t, path)
	wal, err := os.ReadFile(img + "-wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("crash image has no WAL (%v): the test would prove nothing", err)
	}
	checkMessages(t, img, c, 200)
}

// TestWALTornFrame cuts the WAL inside the last transaction, as a crash
// during a commit would: everything committed before it survives, and the
// database opens.
func TestWALTornFrame(t *testing.T) {
	s, path := newTest(t)
	c := addContact(t, s, "acc", "A")
	insertN(t, s, c, 0, 50)
	before, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	insertN(t, s, c, 50, 1)
	img := crashImage(t, path)
	// Keep the first block of the last transaction (a frame header
	// without its page).
	if err := os.Truncate(img+"-wal", before.Size()+walBlock); err != nil {
		t.Fatal(err)
	}
	checkMessages(t, img, c, 50)
	s2, err := Open(img, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	view(t, s2, func(tx *Tx) error {
		if _, err := tx.Message(c, false, "50"); err == nil {
			t.Error("the torn transaction's message is there: the cut did not tear it")
		}
		return nil
	})
}

// TestWALLegacyLayout opens a crash image whose WAL is in SQLite's own
// layout (written by plain adiantum, as samizdat did before the aligned
// layout): nothing committed may be lost.
func TestWALLegacyLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "samizdat.db")
	s, err := open(path, testKey(1), encryptedBaseVFS)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := addContact(t, s, "acc", "A")
	insertN(t, s, c, 0, 100)
	img := crashImage(t, path)
	checkMessages(t, img, c, 100)
	// Closed, the WAL is gone or empty; one left must be aligned.
	if b, err := os.ReadFile(img + "-wal"); err == nil && len(b) >= walBlock && !checkWALMagic(testKey(1), b[:walBlock]) {
		t.Error("a WAL in the old layout is left after reopening")
	}
}

// TestWALSIGKILL kills a process that commits message after message and
// prints each id once its commit has returned: every printed id must be in
// the database when it is reopened.
func TestWALSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "samizdat.db")
	s := openTest(t, path)
	c := addContact(t, s, "acc", "A")
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), walChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := 0
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil || n != acked {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child printed %q, want %d", sc.Text(), acked)
		}
		acked++
		if acked == 300 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd.Wait()
	if acked < 300 {
		t.Fatalf("child stopped after %d commits", acked)
	}
	checkMessages(t, path, c, acked)
}

// walChildEnv names the database a child process of TestWALSIGKILL writes.
const walChildEnv = "SAMIZDAT_STORE_WAL_CHILD"

// walChild is TestWALSIGKILL's child: it commits until killed.
func walChild(path string) int {
	s, err := Open(path, testKey(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var c int64
	if err := s.View(ctx, func(tx *Tx) error {
		return tx.queryRow(`SELECT id FROM contacts`).Scan(&c)
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.InsertMessage(&Message{ID: strconv.Itoa(i), ContactID: c, Body: fmt.Sprintf("message %d", i)})
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}
