package store

import "errors"

var (
	// ErrDiskFull is returned by Update when SQLite cannot write (the disk
	// is full, or failing). The transaction is rolled back: nothing of it
	// is stored, nothing stored before is lost.
	ErrDiskFull = errors.New("cannot write to the disk (is it full?); nothing was changed")

	// ErrNotFound is returned by lookups (Blob, Contact*, Session, Message)
	// and by UpdateContact, SetMessageState and RescheduleOutbox when the
	// record does not exist. Enqueue returns it (wrapped) when the contact
	// does not exist.
	ErrNotFound = errors.New("store: not found")

	// ErrWrongKey is returned by Open when the file cannot be decrypted with
	// the given key. Because the encryption is length-preserving and carries
	// no MAC, an encrypted file of some other program looks the same; the file
	// is never modified in this case.
	ErrWrongKey = errors.New("store: wrong key (or not a samizdat database)")

	// ErrNotDatabase is returned by Open when the file is certainly not an
	// encrypted samizdat database: an unencrypted SQLite file, a file whose
	// size is not a whole number of pages, or a database of another
	// application. The file is not modified.
	ErrNotDatabase = errors.New("store: not a samizdat database")

	// ErrExists is returned by AddContact and UpdateContact when the account
	// id or the (case-insensitive) name is already used by another contact,
	// and by Enqueue when the message is already in the outbox.
	ErrExists = errors.New("store: already exists")

	// ErrSchemaTooNew is returned by Open when the database was written by a
	// newer samizdat (its schema version is above the newest migration this
	// build knows). The file is not modified: upgrade samizdat.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this program; upgrade samizdat")

	// ErrClosed is returned by Update and View after Close.
	ErrClosed = errors.New("store: closed")

	// ErrInvalid is returned (wrapped, with the reason) for arguments the
	// store refuses: a key that is not KeySize bytes, an empty account id or
	// name, a message body that is not UTF-8 or longer than MaxBodySize, an
	// unknown message state.
	ErrInvalid = errors.New("store: invalid argument")
)
