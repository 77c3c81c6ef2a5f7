package store

import (
	"context"
	"fmt"
)

// Dump returns every value of every row of every table of the mailbox
// database, decrypted, one line per row: what the host's operator, who
// holds the key, can read (the tests that check what a host learns search
// it). Values are written as Go %v / %x would show them, blobs raw.
func (m *MailboxStore) Dump(ctx context.Context) ([]byte, error) {
	var out []byte
	err := m.db.View(ctx, func(tx *Tx) error {
		out = out[:0]
		tables, err := tx.tableNames()
		if err != nil {
			return err
		}
		for _, t := range tables {
			rows, err := tx.query(`SELECT * FROM "` + t + `"`)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				out = append(out, t...)
				for _, v := range vals {
					out = append(out, ' ')
					if b, ok := v.([]byte); ok {
						out = append(out, b...)
					} else {
						out = fmt.Appendf(out, "%v", v)
					}
				}
				out = append(out, '\n')
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: mailbox dump: %w", err)
	}
	return out, nil
}
