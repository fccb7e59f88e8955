package ui

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ewtHistory keeps the last samples of each queue's EWT for the console chart.
type ewtHistory struct {
	n  int
	mu sync.Mutex
	m  map[string][]ewtSample
}

type ewtSample struct {
	at  time.Time
	ewt int // seconds, -1 unknown
}

func newEWTHistory(n int) *ewtHistory { return &ewtHistory{n: n, m: map[string][]ewtSample{}} }

func (h *ewtHistory) add(queue string, at time.Time, ewt int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := append(h.m[queue], ewtSample{at: at, ewt: ewt})
	if len(s) > h.n {
		s = s[len(s)-h.n:]
	}
	h.m[queue] = s
}

// ewtChart is one queue's inline SVG line.
type ewtChart struct {
	Queue  string
	Points string // SVG polyline points
	Max    int    // top of the y axis, seconds
	Last   int
	Count  int
}

// Chart geometry (viewBox units).
const (
	chartW = 240
	chartH = 60
)

func (h *ewtHistory) charts() []ewtChart {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ewtChart, 0, len(h.m))
	for q, s := range h.m {
		out = append(out, chartOf(q, s, h.n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out
}

// chartOf maps samples to points: x by index (newest on the right), y by EWT
// with unknown values drawn as zero.
func chartOf(queue string, s []ewtSample, capacity int) ewtChart {
	c := ewtChart{Queue: queue, Count: len(s), Max: 60}
	for _, p := range s {
		if p.ewt > c.Max {
			c.Max = p.ewt
		}
	}
	if len(s) > 0 {
		c.Last = s[len(s)-1].ewt
	}
	var b strings.Builder
	step := float64(chartW) / float64(max(capacity-1, 1))
	off := capacity - len(s)
	for i, p := range s {
		v := max(p.ewt, 0)
		x := float64(off+i) * step
		y := float64(chartH) - float64(v)/float64(c.Max)*float64(chartH-4) - 2
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	c.Points = b.String()
	return c
}
