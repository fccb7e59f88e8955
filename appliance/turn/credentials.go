package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST (coturn use-auth-secret) is defined on HMAC-SHA1.
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// restSeparator separates expiry and user in a TURN REST username; coturn's
// default rest-api-separator.
const restSeparator = ":"

// NewCredentials returns TURN REST credentials valid until now+ttl, in the
// format coturn accepts with use-auth-secret/static-auth-secret: username is
// "<unix-expiry>" or "<unix-expiry>:<user>", password is
// base64(HMAC-SHA1(secret, username)).
func NewCredentials(secret, user string, ttl time.Duration, now time.Time) (username, password string, expires time.Time) {
	expires = time.Unix(now.Add(ttl).Unix(), 0)
	username = strconv.FormatInt(expires.Unix(), 10)
	if user != "" {
		username += restSeparator + user
	}
	return username, restPassword(secret, username), expires
}

// restPassword is base64(HMAC-SHA1(secret, username)).
func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username)) // hash.Hash.Write never fails
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var (
	errRESTMalformed = errors.New("username is not <unix-expiry>[:<user>]")
	errRESTExpired   = errors.New("credentials expired")
)

// parseRESTUsername splits a TURN REST username into its expiry and the user
// that quotas are counted against (the part after ':', else the whole name).
func parseRESTUsername(username string) (expires time.Time, user string, err error) {
	ts, rest, found := strings.Cut(username, restSeparator)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", errRESTMalformed
	}
	user = username
	if found && rest != "" {
		user = rest
	}
	return time.Unix(sec, 0), user, nil
}

// checkREST validates a REST username against now and returns the user and the
// password the client must have derived from the shared secret.
func checkREST(secret, username string, now time.Time) (user, password string, err error) {
	expires, user, err := parseRESTUsername(username)
	if err != nil {
		return "", "", err
	}
	if expires.Before(now.Truncate(time.Second)) {
		return "", "", errRESTExpired
	}
	return user, restPassword(secret, username), nil
}
