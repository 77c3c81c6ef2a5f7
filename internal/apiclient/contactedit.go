package apiclient

import (
	"context"
	"net/http"
)

// RenameContactRequest is POST /api/v1/contacts/rename.
type RenameContactRequest struct {
	Contact string `json:"contact"` // name or account id
	Name    string `json:"name"`
}

// DeleteContactRequest is POST /api/v1/contacts/delete.
type DeleteContactRequest struct {
	Contact string `json:"contact"` // name or account id
}

// RenameContact renames a contact, here and on the account's other
// devices.
func (c *Client) RenameContact(ctx context.Context, contact, name string) (Contact, error) {
	var out Contact
	return out, c.do(ctx, http.MethodPost, "/api/v1/contacts/rename", RenameContactRequest{Contact: contact, Name: name}, &out)
}

// DeleteContact deletes a contact and its chat, here and on the account's
// other devices.
func (c *Client) DeleteContact(ctx context.Context, contact string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/contacts/delete", DeleteContactRequest{Contact: contact}, nil)
}
