package ui

import (
	"math"
	"testing"
)

// Seed 004: 100,000 callbacks/day with 1 kB user data -> about 14 GB of
// database storage and about 9.5 GB of Redis memory.
func TestEstimateStorageSeedExample(t *testing.T) {
	got := EstimateStorage(StorageInput{CallbacksPerDay: 100000, UserDataKB: 1})
	if got.DBKB != 14_000_000 {
		t.Errorf("db = %v kB, want 14,000,000 kB", got.DBKB)
	}
	if got.RedisKB != 9_450_000 {
		t.Errorf("redis = %v kB, want 9,450,000 kB", got.RedisKB)
	}
	if s := fmtGB(got.DBKB); s != "14 GB" {
		t.Errorf("db shown as %q, want 14 GB", s)
	}
	if s := fmtGB(got.RedisKB); s != "9.5 GB" {
		t.Errorf("redis shown as %q, want 9.5 GB", s)
	}
	if math.Abs(got.RedisKeyAvgKB-6.75/3) > 1e-9 {
		t.Errorf("key size = %v, want 2.25", got.RedisKeyAvgKB)
	}
}

// Seed 004's Redis operations example: 15-minute slots, capacity 100, 24x7,
// 14 days booked, 1,000 active immediate callbacks, EWT 90 minutes.
func TestEstimateRedisOpsSeedExample(t *testing.T) {
	got := EstimateRedisOps(RedisOpsInput{SlotMinutes: 15, CapacityPerSlot: 100, OpenHoursPerDay: 24, DaysBooked: 14,
		ActiveImmediate: 1000, EWTMinutes: 90})
	checks := []struct {
		name      string
		got, want float64
	}{
		{"total scheduled", got.TotalScheduled, 134400},
		{"active scheduled", got.ActiveScheduled, 600},
		{"upcoming scheduled", got.UpcomingScheduled, 133800},
		{"total active", got.TotalActive, 1600},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r := math.Round(got.OpsPerMinute); r != 138756 {
		t.Errorf("ops/min = %v (rounded %v), want 138,756", got.OpsPerMinute, r)
	}
	if s := fmtNum(math.Round(got.OpsPerMinute)); s != "138,756" {
		t.Errorf("shown as %q", s)
	}
}

// Seed 004: scheduled 1 hour ahead ~ 60 + 110 = 170; 1 day ahead ~ 1550.
func TestRedisOpsPerCallback(t *testing.T) {
	if got := RedisOpsPerCallback(60); got != 170 {
		t.Errorf("1 hour ahead = %v, want 170", got)
	}
	if got := RedisOpsPerCallback(24 * 60); got != 1550 {
		t.Errorf("1 day ahead = %v, want 1550", got)
	}
	if got := RedisOpsPerCallback(-5); got != 110 {
		t.Errorf("immediate = %v, want 110", got)
	}
}

func TestFmtNum(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.89: "1,234,567.9", 9.45: "9.5", -1500: "-1,500"} {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
}
