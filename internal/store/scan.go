package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// Find reports where needle occurs in the decrypted database: as
// "table.column" for every table (FTS shadow tables included) whose rows
// hold it in a text or blob value. It is how tests check what someone
// holding the store key (the operator of a carrier or host, a thief with the
// passphrase) could read, which a scan of the encrypted file cannot show.
func (s *Store) Find(ctx context.Context, needle []byte) ([]string, error) {
	if len(needle) == 0 {
		return nil, fmt.Errorf("%w: empty needle", ErrInvalid)
	}
	var found []string
	err := s.View(ctx, func(tx *Tx) error {
		tables, err := tx.tableNames()
		if err != nil {
			return err
		}
		for _, table := range tables {
			where, err := findIn(ctx, tx, table, needle)
			if err != nil {
				return err
			}
			found = append(found, where...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: find: %w", err)
	}
	return found, nil
}

func findIn(ctx context.Context, tx *Tx, table string, needle []byte) ([]string, error) {
	rows, err := tx.tx.QueryContext(ctx, `SELECT * FROM "`+strings.ReplaceAll(table, `"`, `""`)+`"`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	hit := map[string]bool{}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		for i, v := range vals {
			var b []byte
			switch v := v.(type) {
			case []byte:
				b = v
			case string:
				b = []byte(v)
			}
			if bytes.Contains(b, needle) && !hit[cols[i]] {
				hit[cols[i]] = true
				out = append(out, table+"."+cols[i])
			}
		}
	}
	return out, rows.Err()
}

// tableNames lists the tables of the database (for the scans of what an
// operator holding the key can read).
func (tx *Tx) tableNames() ([]string, error) {
	rows, err := tx.query(`SELECT name FROM sqlite_schema WHERE type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		tables = append(tables, name)
	}
	return tables, rows.Err()
}
