package turn

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

func TestNewCredentialsMatchesCoturnFormat(t *testing.T) {
	now := time.Unix(1700000000, 0)
	// Expected passwords computed independently (Python hmac/base64).
	for _, tc := range []struct {
		user, wantName, wantPass string
	}{
		{"alice", "1700003600:alice", "GHD5MAby5mutoE6iFRzuBlAHKuA="},
		{"", "1700003600", "k8Wh8NQI2HDa8DpQBIksGAnUo9c="},
	} {
		name, pass, exp := NewCredentials("cxlab-turn-secret", tc.user, time.Hour, now)
		if name != tc.wantName || pass != tc.wantPass || !exp.Equal(time.Unix(1700003600, 0)) {
			t.Errorf("NewCredentials(%q) = %q, %q, %v; want %q, %q", tc.user, name, pass, exp, tc.wantName, tc.wantPass)
		}
	}
	// pion's own TURN REST generator agrees on the password for a username.
	name, pass, err := pionturn.GenerateLongTermTURNRESTCredentials("s3cret", "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := restPassword("s3cret", name); got != pass {
		t.Errorf("restPassword(%q) = %q, pion says %q", name, got, pass)
	}
}

func TestCheckREST(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		username, wantUser string
		wantErr            error
	}{
		{"1700000100:alice", "alice", nil},
		{"1700000100", "1700000100", nil},
		{"1700000000:alice", "alice", nil}, // expires this very second: still valid
		{"1699999999:alice", "", errRESTExpired},
		{"alice:1700000100", "", errRESTMalformed},
		{"", "", errRESTMalformed},
		{"-5:alice", "", errRESTMalformed},
	} {
		user, pass, err := checkREST("k", tc.username, now)
		if !errors.Is(err, tc.wantErr) || user != tc.wantUser {
			t.Errorf("checkREST(%q) = %q, %v; want %q, %v", tc.username, user, err, tc.wantUser, tc.wantErr)
		}
		if err == nil && pass != restPassword("k", tc.username) {
			t.Errorf("checkREST(%q) password %q", tc.username, pass)
		}
	}
}

func ExampleNewCredentials() {
	username, password, _ := NewCredentials("cxlab-turn-secret", "alice", time.Hour, time.Unix(1700000000, 0))
	fmt.Println(username, password)
	// Output: 1700003600:alice GHD5MAby5mutoE6iFRzuBlAHKuA=
}

// An expired TURN REST username cannot make a new allocation, but the
// allocation made with it in time is still refreshed, permitted and
// deleted with it (as coturn does), with the same integrity key.
func TestExpiredCredentialKeepsItsAllocation(t *testing.T) {
	s := startServer(t, nil)
	username, _, _ := NewCredentials("test-secret", "alice", time.Second, time.Now().Add(-time.Hour))
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	ra := func(m stun.Method) *pionturn.RequestAttributes {
		return &pionturn.RequestAttributes{Username: username, Realm: s.cfg.Realm, SrcAddr: addr, Method: m}
	}
	if _, _, ok := s.authenticate(ra(stun.MethodAllocate)); ok {
		t.Fatal("an expired username made an allocation")
	}
	want := pionturn.GenerateAuthKey(username, s.cfg.Realm, restPassword("test-secret", username))
	for _, m := range []stun.Method{stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind} {
		user, key, ok := s.authenticate(ra(m))
		if !ok || user != "alice" || string(key) != string(want) {
			t.Errorf("%s with the expired username of an allocation: ok %v user %q", m, ok, user)
		}
	}
}
