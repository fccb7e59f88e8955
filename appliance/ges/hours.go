package ges

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// schedule is a compiled ServiceConfig: business hours and slot grid in the
// service time zone.
type schedule struct {
	svc      ServiceConfig
	loc      *time.Location
	weekly   [7][][2]int // per weekday, [open, close) in minutes after local midnight
	holidays map[civilDate]bool
	slot     time.Duration
}

// civilDate is a calendar day in the service time zone (a map key that costs
// no formatting: openFor looks at up to eight days per create).
type civilDate struct {
	y int
	m time.Month
	d int
}

// interval is a half-open span of absolute time.
type interval struct{ start, end time.Time }

// compileSchedule validates and compiles a service's configuration.
func compileSchedule(svc ServiceConfig) (*schedule, error) {
	tz := svc.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("service %s: time zone %q: %w", svc.Name, tz, err)
	}
	s := &schedule{svc: svc, loc: loc, holidays: map[civilDate]bool{}}
	if svc.SlotDurationMin <= 0 {
		s.svc.SlotDurationMin = 15
	}
	s.slot = time.Duration(s.svc.SlotDurationMin) * time.Minute
	for i, day := range weekdays {
		for _, oc := range svc.BusinessHours.Weekly[day] {
			o, err1 := parseHHMM(oc.Open)
			c, err2 := parseHHMM(oc.Close)
			if err1 != nil || err2 != nil || c <= o {
				return nil, fmt.Errorf("service %s: business hours %s %s-%s are malformed", svc.Name, day, oc.Open, oc.Close)
			}
			s.weekly[i] = append(s.weekly[i], [2]int{o, c})
		}
		sort.Slice(s.weekly[i], func(a, b int) bool { return s.weekly[i][a][0] < s.weekly[i][b][0] })
	}
	for _, h := range svc.BusinessHours.Holidays {
		d, err := time.Parse(time.DateOnly, h)
		if err != nil {
			return nil, fmt.Errorf("service %s: holiday %q: %w", svc.Name, h, err)
		}
		s.holidays[civilDate{d.Year(), d.Month(), d.Day()}] = true
	}
	return s, nil
}

// parseHHMM parses "HH:MM" (00:00..24:00) into minutes after midnight.
func parseHHMM(v string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(v), ":")
	if !ok {
		return 0, fmt.Errorf("time %q: want HH:MM", v)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("time %q: want HH:MM", v)
	}
	return hh*60 + mm, nil
}

// dayIntervals returns the open intervals of the local calendar day containing t.
func (s *schedule) dayIntervals(t time.Time) []interval {
	lt := t.In(s.loc)
	y, m, d := lt.Date()
	if s.holidays[civilDate{y, m, d}] {
		return nil
	}
	out := make([]interval, 0, len(s.weekly[lt.Weekday()]))
	for _, oc := range s.weekly[lt.Weekday()] {
		out = append(out, interval{
			start: time.Date(y, m, d, oc[0]/60, oc[0]%60, 0, 0, s.loc),
			end:   time.Date(y, m, d, oc[1]/60, oc[1]%60, 0, 0, s.loc),
		})
	}
	return out
}

// nextDay returns local midnight of the day after t's local day.
func (s *schedule) nextDay(t time.Time) time.Time {
	lt := t.In(s.loc)
	y, m, d := lt.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, s.loc)
}

// localMidnight returns the start of t's local day.
func (s *schedule) localMidnight(t time.Time) time.Time {
	lt := t.In(s.loc)
	y, m, d := lt.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.loc)
}

// openFor returns how long the service stays open from t (0 when closed now).
// Back-to-back intervals, also across midnight, count as one; the look-ahead is
// capped at eight days so a 24x7 service answers about a week.
func (s *schedule) openFor(t time.Time) time.Duration {
	var end time.Time
	day := t
	for i := 0; i < 8; i++ {
		for _, iv := range s.dayIntervals(day) {
			switch {
			case end.IsZero() && !t.Before(iv.start) && t.Before(iv.end):
				end = iv.end
			case !end.IsZero() && !iv.start.After(end) && iv.end.After(end):
				end = iv.end
			}
		}
		if end.IsZero() {
			return 0
		}
		day = s.nextDay(day)
		if end.Before(day) {
			break
		}
	}
	return end.Sub(t)
}

// isOpen reports whether the service is open at t.
func (s *schedule) isOpen(t time.Time) bool { return s.openFor(t) > 0 }

// slotStart returns the start of the slot containing t; slots are aligned to
// local midnight in the service time zone.
func (s *schedule) slotStart(t time.Time) time.Time {
	mid := s.localMidnight(t)
	return mid.Add(t.Sub(mid) / s.slot * s.slot)
}

// slotOpen reports whether the slot starting at start lies in business hours.
func (s *schedule) slotOpen(start time.Time) bool {
	for _, iv := range s.dayIntervals(start) {
		if !start.Before(iv.start) && start.Before(iv.end) {
			return true
		}
	}
	return false
}

// openSlots returns the starts of open slots with from <= start < to, in order,
// at most max of them (max <= 0: no cap).
func (s *schedule) openSlots(from, to time.Time, max int) []time.Time {
	var out []time.Time
	for day := s.localMidnight(from); day.Before(to); day = s.nextDay(day) {
		for _, iv := range s.dayIntervals(day) {
			st := s.slotStart(iv.start)
			if st.Before(iv.start) {
				st = st.Add(s.slot)
			}
			for ; st.Before(iv.end); st = st.Add(s.slot) {
				if st.Before(from) || !st.Before(to) {
					continue
				}
				if n := len(out); n > 0 && !st.After(out[n-1]) {
					continue
				}
				out = append(out, st)
				if max > 0 && len(out) >= max {
					return out
				}
			}
		}
	}
	return out
}
