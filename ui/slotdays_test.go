package ui

import (
	"reflect"
	"testing"
	"time"
)

func TestSlotDaysGroupByServiceAndUTCDay(t *testing.T) {
	day1 := time.Date(2026, 5, 28, 23, 30, 0, 0, time.UTC)
	got := slotDays([]SlotUsage{
		{Service: "CB_Sales", Start: day1, Booked: 0, Capacity: 10},
		{Service: "CB_Sales", Start: day1.Add(30 * time.Minute), Booked: 4, Capacity: 10},
		{Service: "CB_Sales", Start: day1.Add(60 * time.Minute), Booked: 10, Capacity: 10},
		{Service: "CB_Support", Start: day1.Add(30 * time.Minute), Booked: 5, Capacity: 5},
	})
	want := []slotDay{
		{Service: "CB_Sales", Day: "2026-05-28", Booked: 0, Capacity: 10,
			Cells: []slotCell{{Title: "23:30 UTC: 0 of 10 booked", Fill: "slot-empty"}}},
		{Service: "CB_Sales", Day: "2026-05-29", Booked: 14, Capacity: 20,
			Cells: []slotCell{{Title: "00:00 UTC: 4 of 10 booked", Fill: "slot-some"}, {Title: "00:30 UTC: 10 of 10 booked", Fill: "slot-full"}}},
		{Service: "CB_Support", Day: "2026-05-29", Booked: 5, Capacity: 5,
			Cells: []slotCell{{Title: "00:00 UTC: 5 of 5 booked", Fill: "slot-full"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("slotDays:\n got %+v\nwant %+v", got, want)
	}
}

// The scaling view's what-if form starts from the live CPU and memory
// percentages, rounded to what a person would type.
func TestWhatIfPercentagesAreRounded(t *testing.T) {
	for in, want := range map[float64]string{1.3698760133126493: "1.4", 9.3902587890625: "9.4", 60: "60", 0: "0"} {
		if got := fmtF1(in); got != want {
			t.Errorf("fmtF1(%v) = %q, want %q", in, got, want)
		}
	}
}
