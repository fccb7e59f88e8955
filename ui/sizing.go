package ui

import "math"

// The GES sizing formulas of seed 004 ("Sizing calculator" and "Redis
// operations"). Sizes are in decimal kB, as the seed's worked example reads
// them (100,000 callbacks × 10 kB × 14 days = 14,000,000 kB ≈ 14 GB).

// RetentionDays is the fixed callback record TTL (seed 004, GDPR support).
const RetentionDays = 14

// StorageInput are the sizing calculator's inputs.
type StorageInput struct {
	CallbacksPerDay float64
	UserDataKB      float64 // kB of user data per callback
}

// StorageEstimate is the calculator's answer.
type StorageEstimate struct {
	DBKB           float64 // PostgreSQL disk for callback data
	RedisKB        float64 // Redis memory for callback data
	RedisKeyAvgKB  float64 // average size of one of the three Redis keys per callback
	DBPerCallback  float64 // kB per callback
	RedisPerCallbk float64 // kB per callback
}

// EstimateStorage applies
//
//	DB    = callbacks/day × (7 kB + 3 kB × userDataKB) × 14 days
//	Redis = callbacks/day × (5.5 kB + 1.25 kB × userDataKB) × 14 days
//	key   = (5.5 kB + 1.25 kB × userDataKB) / 3
func EstimateStorage(in StorageInput) StorageEstimate {
	db := 7 + 3*in.UserDataKB
	rd := 5.5 + 1.25*in.UserDataKB
	return StorageEstimate{
		DBKB:           in.CallbacksPerDay * db * RetentionDays,
		RedisKB:        in.CallbacksPerDay * rd * RetentionDays,
		RedisKeyAvgKB:  rd / 3,
		DBPerCallback:  db,
		RedisPerCallbk: rd,
	}
}

// RedisOpsInput are the inputs of the Redis operations estimate.
type RedisOpsInput struct {
	SlotMinutes      float64 // time slot duration
	CapacityPerSlot  float64 // maximum callbacks per slot
	OpenHoursPerDay  float64 // 24 for a 24x7 service
	DaysBooked       float64 // how far ahead slots are fully booked (14 in the seed)
	ActiveImmediate  float64 // active immediate callbacks
	EWTMinutes       float64 // estimated wait time
	BaseOpsPerSecond float64 // idle GES load; 0 means the seed's 50
}

// RedisOpsEstimate is the estimate with its intermediate figures, so the
// console can show the working as the seed does.
type RedisOpsEstimate struct {
	TotalScheduled    float64
	ActiveScheduled   float64
	UpcomingScheduled float64
	TotalActive       float64
	OpsPerMinute      float64
}

// EstimateRedisOps applies the seed's formula:
//
//	total scheduled  = capacity × (60 / slot) × open hours × days
//	active scheduled = (capacity / slot) × EWT
//	upcoming         = total scheduled − active scheduled
//	active           = active immediate + active scheduled
//	ops/min          = base/s × 60 + upcoming + (active / EWT) × 110
func EstimateRedisOps(in RedisOpsInput) RedisOpsEstimate {
	base := in.BaseOpsPerSecond
	if base == 0 {
		base = 50
	}
	var out RedisOpsEstimate
	if in.SlotMinutes > 0 {
		out.TotalScheduled = in.CapacityPerSlot * (60 / in.SlotMinutes) * in.OpenHoursPerDay * in.DaysBooked
		out.ActiveScheduled = in.CapacityPerSlot / in.SlotMinutes * in.EWTMinutes
	}
	out.UpcomingScheduled = math.Max(out.TotalScheduled-out.ActiveScheduled, 0)
	out.TotalActive = in.ActiveImmediate + out.ActiveScheduled
	out.OpsPerMinute = base*60 + out.UpcomingScheduled
	if in.EWTMinutes > 0 {
		out.OpsPerMinute += out.TotalActive / in.EWTMinutes * 110
	}
	return out
}

// RedisOpsPerCallback is the seed's per-callback count: 110 for the ORS
// session plus one per minute the callback waits for its scheduled time.
func RedisOpsPerCallback(minutesUntilScheduled float64) float64 {
	return 110 + math.Max(minutesUntilScheduled, 0)
}
