package ges

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// possibleE164 answers as phonenumbers.Parse + IsPossibleNumber do, for every
// number of E.164 shape: random ones over all country codes, with zeros after
// the country code (where Parse strips national prefixes), and known cases.
func TestPossibleE164MatchesParse(t *testing.T) {
	parse := func(v string) bool {
		n, err := phonenumbers.Parse(v, "")
		return err == nil && phonenumbers.IsPossibleNumber(n)
	}
	cases := []string{"+12025550100", "+390612345678", "+3906123", "+4402079460000", "+442079460000", "+80012345678",
		"+400659067005", "+9009549650", "+61491570156", "+5491123456789", "+8613800138000", "+2348031234567", "+10000000"}
	r := rand.New(rand.NewPCG(4, 6))
	for range 40000 {
		b := []byte{'+', byte('1' + r.IntN(9))}
		for n := 6 + r.IntN(9); n > 0; n-- {
			b = append(b, byte('0'+r.IntN(10)))
		}
		if r.IntN(3) == 0 {
			b[2+r.IntN(3)] = '0'
		}
		cases = append(cases, string(b))
	}
	differ := 0
	for _, v := range cases {
		if !e164.MatchString(v) {
			t.Fatalf("case %s is not of E.164 shape", v)
		}
		if got, want := possibleE164(v), parse(v); got != want {
			differ++
			t.Errorf("possibleE164(%s) = %v, Parse says %v", v, got, want)
			if differ > 10 {
				t.FailNow()
			}
		}
	}
}

func BenchmarkPossibleE164(b *testing.B) {
	for b.Loop() {
		possibleE164("+12025550143")
	}
}

// TestPremiumRateNumbersBlocked: a callback to a US premium-rate number
// (+1 900) is refused with 400 naming the field, as the real product blocks
// them by default; the neighbouring toll-free and ordinary numbers book.
func TestPremiumRateNumbersBlocked(t *testing.T) {
	e := newEnv(t)
	r := e.api(http.MethodPost, "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": "+19005550123"})
	if r.code != 400 || !strings.Contains(r.Status.Message, "phoneNumber") || !strings.Contains(r.Status.Message, "premium") {
		t.Fatalf("premium-rate create: %d %+v", r.code, r.Status)
	}
	for _, n := range []string{"+18005550123", "+12025550123"} {
		if r := e.api(http.MethodPost, "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": n}); r.code != 200 {
			t.Fatalf("create for %s: %d %+v", n, r.code, r.Status)
		}
	}
}
