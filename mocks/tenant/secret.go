package tenant

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// SecretCost is the bcrypt cost used for person passwords and client secrets.
// bcrypt rather than argon2id because it has one tuning knob and no memory
// parameters to get wrong, and the lowest cost because every credential in a
// lab is a published demo value: the hash only keeps secrets out of database
// dumps and logs, while logins, seeding and tests stay fast (about 1 ms).
const SecretCost = bcrypt.MinCost

// HashSecret returns the bcrypt hash of a password or client secret.
func HashSecret(secret string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(secret), SecretCost)
	if err != nil {
		return "", fmt.Errorf("hash secret: %w", err)
	}
	return string(h), nil
}

// CheckSecret reports whether secret matches hash.
func CheckSecret(hash, secret string) bool {
	if hash == "" {
		return false
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret))
	return err == nil
}

// keepOrHash returns current when it already hashes secret (so re-applying a
// seed leaves the row untouched), otherwise a fresh hash.
func keepOrHash(current, secret string) (string, error) {
	if CheckSecret(current, secret) {
		return current, nil
	}
	if secret == "" {
		return "", errors.New("empty secret")
	}
	return HashSecret(secret)
}
