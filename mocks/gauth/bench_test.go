package gauth_test

import (
	"net/url"
	"testing"
)

// BenchmarkClientCredentials measures the token endpoint end to end over HTTP:
// client secret check (bcrypt), JWT signing (RSA-2048) and the token row insert.
func BenchmarkClientCredentials(b *testing.B) {
	e := newEnv(b)
	form := url.Values{"grant_type": {"client_credentials"}}
	b.ResetTimer()
	for b.Loop() {
		if code, _, m := e.postForm("ges_client", "ges-secret", form); code != 200 {
			b.Fatalf("token: %d %v", code, m)
		}
	}
}

// BenchmarkUserinfo measures token validation: signature, expiry, the
// revocation lookup in Postgres and the client and person lookups in the
// tenant directory.
func BenchmarkUserinfo(b *testing.B) {
	e := newEnv(b)
	tok := e.password("agent1", "agent123")
	b.ResetTimer()
	for b.Loop() {
		if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 200 {
			b.Fatalf("userinfo: %d", code)
		}
	}
}
