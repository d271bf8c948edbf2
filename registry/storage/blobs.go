package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Digest returns the content address of data: "sha256:" and the lowercase hex SHA-256.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return digestPrefix + hex.EncodeToString(sum[:])
}

// digestPrefix starts every blob digest.
const digestPrefix = "sha256:"

// CheckDigest accepts "sha256:" followed by 64 lowercase hex digits.
func CheckDigest(d string) error {
	hexPart, ok := strings.CutPrefix(d, digestPrefix)
	isHex := func(r rune) bool { return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' }
	if !ok || len(hexPart) != 2*sha256.Size || strings.IndexFunc(hexPart, func(r rune) bool { return !isHex(r) }) >= 0 {
		return fmt.Errorf("digest %q is not \"sha256:<64 lowercase hex>\": %w", d, ErrInvalid)
	}
	return nil
}
