package ui

import (
	"strconv"
	"time"
)

// slotDay is one service's open slots on one UTC day, drawn on the console as
// a strip of cells: the 72 hours of 15- or 30-minute slots the console looks
// at are hundreds, one table row each made the page 12,000 pixels tall.
type slotDay struct {
	Service          string
	Day              string // 2006-01-02 (UTC)
	Booked, Capacity int    // the day's sums
	Cells            []slotCell
}

// slotCell is one slot: its time, and how full it is.
type slotCell struct {
	Title string // "13:30 UTC: 2 of 10 booked"
	Fill  string // slot-empty, slot-some, slot-full
}

// slotDays groups usage (sorted by service, then start, as the console's
// source returns it) into one slotDay per service and UTC day, in order.
func slotDays(usage []SlotUsage) []slotDay {
	var out []slotDay
	for _, u := range usage {
		day := u.Start.UTC().Format(time.DateOnly)
		if n := len(out); n == 0 || out[n-1].Service != u.Service || out[n-1].Day != day {
			out = append(out, slotDay{Service: u.Service, Day: day})
		}
		d := &out[len(out)-1]
		d.Booked += u.Booked
		d.Capacity += u.Capacity
		fill := "slot-some"
		switch {
		case u.Booked <= 0:
			fill = "slot-empty"
		case u.Booked >= u.Capacity:
			fill = "slot-full"
		}
		d.Cells = append(d.Cells, slotCell{Fill: fill,
			Title: u.Start.UTC().Format("15:04") + " UTC: " + strconv.Itoa(u.Booked) + " of " + strconv.Itoa(u.Capacity) + " booked"})
	}
	return out
}
