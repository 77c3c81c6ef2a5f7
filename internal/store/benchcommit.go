package store

import (
	"context"
	"fmt"
	"time"
)

// benchApplicationID marks MeasureCommits' scratch database ("SZBN").
const benchApplicationID = 0x535A424E

// MeasureCommits is the floor of a durable write, for benchmarks: it
// creates a scratch database at path (a new file) on the production VFS
// (encrypted, the same WAL layout and pragmas as a profile) and times n
// transactions that each insert one 100-byte row and commit. Delete path
// and its -wal afterwards.
func MeasureCommits(ctx context.Context, path string, key []byte, n int) ([]time.Duration, error) {
	db, err := openSchema(path, key, encryptedVFS, schema{name: "bench", appID: benchApplicationID,
		steps: []string{`CREATE TABLE rows (id INTEGER PRIMARY KEY, v BLOB NOT NULL) STRICT;`}})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	row := make([]byte, 100)
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := db.Update(ctx, func(tx *Tx) error {
			_, err := tx.exec(`INSERT INTO rows (v) VALUES (?)`, row)
			return err
		}); err != nil {
			return nil, fmt.Errorf("store: bench commit: %w", err)
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}
