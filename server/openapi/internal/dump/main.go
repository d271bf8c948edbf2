// Command dump writes the OpenAPI document as JSON to standard output, for the SDK generators
// that read JSON only (`make sdk-models`).
package main

import (
	"os"

	"github.com/plugboard/plugboard/server/openapi"
)

func main() {
	if _, err := os.Stdout.Write(openapi.JSON()); err != nil {
		os.Exit(1)
	}
}
