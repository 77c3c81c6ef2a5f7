// Package devices links several devices to one account (issue 17):
// the samizdat-link: code a new device shows, the authenticated key
// exchange over /samizdat/link/1 that gives it the account, and the
// account's device list (who is linked, who is revoked, its version).
//
// Linking, as Signal and WhatsApp do it: the new device shows a code (text
// or QR) carrying its transport key, a one-time secret and an ephemeral
// X25519 key; an existing device reads it, dials the new device (whose peer
// id the code names, so libp2p authenticates it), proves it knows the
// secret, and both derive keys from the X25519 exchange, salted with the
// secret and bound to both peer ids. Both show the same 6-digit code for
// the users to compare; only then does the existing device send the account
// (sealed under the derived key), the new device certify its transport key
// for it, and the existing device add it to the device list under a higher
// version (docs/SECURITY.md "Linked devices" says why the account key is
// shared rather than kept on the first device).
//
// The package imports no libp2p (streams come through Transport), keeps
// its state in store blobs, and never logs secrets, keys or codes.
package devices
