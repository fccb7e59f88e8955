package gws_test

import "testing"

// BenchmarkPersonsLookup measures what the gateway does at each agent sign-in:
// a person lookup with a token verified locally (JWKS cached, userinfo answer
// cached for RevocationCheckTTL) and two tenant queries.
func BenchmarkPersonsLookup(b *testing.B) {
	e := newEnv(b)
	tok := e.user("agent1", "agent123")
	b.ResetTimer()
	for b.Loop() {
		if code, _ := e.call("GET", "/configuration/v3/objects/persons?user_name=agent1", tok, ""); code != 200 {
			b.Fatalf("persons: %d", code)
		}
	}
}

// BenchmarkStatistics measures one get-statistic-ex call for two queues.
func BenchmarkStatistics(b *testing.B) {
	e := newEnv(b)
	tok := e.service("ges_client", "ges-secret")
	body := `{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrentReadyAgents"},
		{"objectId":"VQ_Support","objectType":"Queue","name":"ExpectedWaitTime"}]}}`
	b.ResetTimer()
	for b.Loop() {
		if code, _ := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, tok, body); code != 200 {
			b.Fatalf("statistics: %d", code)
		}
	}
}
