package plugboard

import (
	"context"
	"io"
	"net/http"
)

// Backup is what [Client.Backup] learned about the snapshot it wrote.
type Backup struct {
	// Bytes is the snapshot's length.
	Bytes int64
	// MasterKeyID is the id of the server's active master key (X-Plugboard-Master-Key-Id): the
	// key file holding it is needed to open the connection secrets of a restored store.
	MasterKeyID string
}

// Backup streams a consistent snapshot of the server's store (GET /v1/store/backup, admin
// only) into w. A server that fails half-way cuts the body short of its Content-Length, which
// Backup reports as an error: the bytes in w are then not a usable backup.
func (c *Client) Backup(ctx context.Context, w io.Writer) (Backup, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/store/backup", accept: "application/octet-stream", sink: w})
	if err != nil {
		return Backup{}, err
	}
	return Backup{Bytes: resp.written, MasterKeyID: resp.header.Get("X-Plugboard-Master-Key-Id")}, nil
}
