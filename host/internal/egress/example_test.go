package egress_test

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host/internal/egress"
)

// A plugin cannot reach the cloud metadata service, even when its manifest lists the address:
// the address is checked before anything is dialed, and --egress-allow is the only way in.
func Example_metadataIsRefused() {
	c := egress.New(egress.Config{})
	g := &egress.Grant{ManifestOrigins: []string{"http://169.254.169.254"}}
	req := &abi.HTTPRequest{Method: "GET", URL: "http://169.254.169.254/latest/meta-data/"}

	resp := c.Do(context.Background(), g, egress.NewBudget(10), req, func(o egress.Outbound) {
		fmt.Println("logged:", o.Method, o.Origin, o.Status)
	})
	fmt.Println(resp.Error.Code)
	fmt.Println(resp.Error.Message)
	// Output:
	// logged: GET http://169.254.169.254 0
	// private_address
	// 169.254.169.254 is a link-local address; plugins may reach it only if the server allows that range (--egress-allow)
}

// An origin the manifest does not list is refused before any lookup.
func Example_hostNotAllowed() {
	c := egress.New(egress.Config{})
	g := &egress.Grant{ManifestOrigins: []string{"https://api.github.com"}}
	resp := c.Do(context.Background(), g, egress.NewBudget(10), &abi.HTTPRequest{Method: "GET", URL: "https://evil.example/steal"}, nil)
	fmt.Println(resp.Error)
	// Output:
	// host_not_allowed: origin https://evil.example is not allowed: the connector's manifest hosts must list it
}
