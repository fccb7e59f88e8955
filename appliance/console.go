package appliance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/ges"
	"github.com/cxlab/cxlab/appliance/turn"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/tenant"
	"github.com/cxlab/cxlab/mocks/voice"
	"github.com/cxlab/cxlab/ui"
)

// consoleSources hands the console read access to live state and the lab's
// controls. This is the one place where the root reaches into the services'
// Go values, for a view of the whole lab that no single service has.
//
// The services stamp their records with the lab clock; the console shows
// uptimes and durations in wall time, so every timestamp handed to it goes
// through the clock's history (wallTimes) first.
func (a *Appliance) consoleSources(tenants *tenant.Store) ui.ConsoleSources {
	cpu := &cpuSampler{}
	wt := newWallTimes(a.clock)
	src := ui.ConsoleSources{
		Overview: func() ui.Overview {
			e := a.Endpoints()
			o := ui.Overview{ConsoleURL: e.ConsoleURL, GESAPIURL: e.GESAPIURL, GESUIURL: e.GESUIURL, GAuthURL: e.GAuthURL,
				WebRTCURL: e.WebRTCURL, TURNURIs: e.TURNURLs, TURNSecret: e.TURNSecret, SIPURI: e.SIPURI, RedisURL: e.RedisURL,
				PostgresURL: e.PostgresURL, MetricsURL: e.MetricsURL, APIKey: e.APIKey, CCID: e.CCID, Version: Version}
			for _, ag := range e.Agents {
				o.Logins = append(o.Logins, ui.Login{Role: "agent", Username: ag.Username, Password: ag.Password, DN: ag.DN})
			}
			if e.Supervisor != nil {
				o.Logins = append(o.Logins, ui.Login{Role: "supervisor", Username: e.Supervisor.Username, Password: e.Supervisor.Password})
			}
			return o
		},
		Components: func(ctx context.Context) []ui.ComponentStatus {
			_, st := a.lc.status(ctx)
			ep := a.componentEndpoints()
			out := make([]ui.ComponentStatus, 0, len(st))
			for _, c := range st {
				out = append(out, ui.ComponentStatus{Name: c.Name, Ready: c.Ready, Detail: c.Error, Endpoint: ep[c.Name],
					Version: Version, Since: c.Started})
			}
			return out
		},
		ClockOffset:  a.clock.Offset,
		AdvanceClock: a.clock.Advance,
		Logs: func(_ context.Context, component string, n int) ([]ui.LogLine, error) {
			return tailLogs(a.logs.Files(), component, n)
		},
		// The tenant store tells Voice and GES (see wireServices' OnChange).
		ResetDemo: tenants.ResetDemo,
	}
	if a.voice != nil {
		src.Agents = func(ctx context.Context) ([]ui.AgentRow, error) {
			var sessions []gateway.SessionInfo
			if a.gateway != nil {
				sessions = a.gateway.Snapshot().Sessions
			}
			return agentRows(a.voice.Snapshot(ctx).Agents, sessions, wt.wall), nil
		}
		src.Calls = func(ctx context.Context) ([]ui.CallRow, error) {
			media := map[string]string{} // by agent DN: the gateway leg's codecs
			if a.gateway != nil {
				snap := a.gateway.Snapshot()
				for _, s := range snap.Sessions {
					if s.Call != nil {
						media[string(s.DN)] = codecLine(s.Call.BrowserCodec, s.Call.SIPCodec, s.Call.Transcoding)
					}
				}
			}
			var out []ui.CallRow
			now := time.Now()
			for _, c := range a.voice.Snapshot(ctx).Calls {
				started := c.Created // Voice stamps calls with the wall clock
				row := ui.CallRow{ID: string(c.ID), From: c.From, To: c.To, State: c.State, Queue: c.VirtualQueue,
					AgentDN: string(c.AgentDN), Started: started}
				end := now
				if c.Ended != nil {
					end = *c.Ended
				}
				row.Duration = end.Sub(started).Round(time.Second)
				var detail []string
				if m := media[string(c.AgentDN)]; m != "" && c.Ended == nil {
					detail = append(detail, m)
				}
				if ca := c.CustomerAnalysis; ca != nil {
					detail = append(detail, fmt.Sprintf("customer heard: audio=%v %.0f Hz %.1f dBFS, %d packets, %d lost, digits %q",
						ca.AudioArrived, ca.DominantHz, ca.LevelDBFS, ca.Packets, ca.Lost, ca.Digits))
				}
				row.Detail = strings.Join(detail, "; ")
				out = append(out, row)
			}
			return out, nil
		}
		src.Queues = func(ctx context.Context) ([]ui.QueueRow, error) {
			var out []ui.QueueRow
			for _, q := range a.voice.Snapshot(ctx).Queues {
				ewt := int(q.ExpectedWaitTime)
				if q.LoggedInAgents == 0 {
					ewt = -1
				}
				out = append(out, ui.QueueRow{Name: q.Name, Waiting: q.WaitingCalls, ReadyAgents: q.ReadyAgents,
					LoggedIn: q.LoggedInAgents, EWTSeconds: ewt})
			}
			return out, nil
		}
	}
	if a.ges != nil {
		src.Slots = func(ctx context.Context) ([]ui.SlotUsage, error) {
			svcs, err := a.ges.Services(ctx, ges.TenantID(tenant.DemoCCID))
			if err != nil {
				return nil, err
			}
			var out []ui.SlotUsage
			for _, sv := range svcs {
				av, err := a.ges.Availability(ctx, ges.TenantID(tenant.DemoCCID), sv.Name,
					ges.AvailabilityQuery{Start: a.clock.Now(), End: a.clock.Now().Add(72 * time.Hour), ReportBusy: true})
				if err != nil {
					return nil, err
				}
				for _, sl := range av.Slots {
					start, err := time.Parse(time.RFC3339, sl.UTCTime)
					if err != nil {
						continue
					}
					out = append(out, ui.SlotUsage{Service: sv.Name, Start: start, Booked: sl.Total - sl.Capacity, Capacity: sl.Total})
				}
			}
			return out, nil
		}
	}
	if a.turn != nil {
		src.TURN = func(context.Context) ([]ui.TURNAllocation, error) {
			return turnRows(a.turn.Allocations(), wt.wall), nil
		}
	}
	src.Scaling = func(context.Context) (ui.ScalingLive, error) {
		live := ui.ScalingLive{GatewayReplicas: 1, CoturnReplicas: 1}
		if a.gateway != nil {
			live.SignIns = len(a.gateway.Snapshot().Sessions)
		}
		// One cxlab process plays one gateway pod and one coturn pod; its CPU
		// is measured against one core (the chart's per-worker request scaled
		// to this box), its memory against a nominal 512 MiB request.
		pct := cpu.percent()
		live.CPUPercent, live.CoturnCPU = pct, pct
		mem := float64(rssBytes()) / (512 << 20) * 100
		live.MemoryPercent, live.CoturnMemory = mem, mem
		return live, nil
	}
	if a.gauth != nil && a.gws != nil {
		src.Faults = func() []ui.Fault {
			g, w := a.gauth.CurrentFailures(), a.gws.CurrentFailures()
			return []ui.Fault{
				{Name: "gauth.down", Description: "GAuth answers 503 to every request", On: g.Mode == gauth.FailDown},
				{Name: "gauth.slow", Description: "GAuth answers after 3 s", On: g.Mode == gauth.FailSlow},
				{Name: "gws.down", Description: "GWS answers 503 to every request", On: w.Mode == gws.FailDown},
				{Name: "gws.slow", Description: "GWS answers after 3 s", On: w.Mode == gws.FailSlow},
			}
		}
		src.SetFault = func(_ context.Context, name string, on bool) error {
			svc, mode, ok := strings.Cut(name, ".")
			if !ok || (mode != "down" && mode != "slow") {
				return fmt.Errorf("unknown fault %q", name)
			}
			m, delay := mode, 0
			if mode == "slow" {
				delay = 3000
			}
			if !on {
				m, delay = "none", 0
			}
			switch svc {
			case "gauth":
				return a.gauth.SetFailures(gauth.Failures{Mode: m, DelayMs: delay})
			case "gws":
				return a.gws.SetFailures(gws.Failures{Mode: m, DelayMs: delay})
			}
			return fmt.Errorf("unknown fault %q", name)
		}
	}
	return src
}

// agentRows joins Voice's agents with their gateway sessions: sign-in, and
// the current call's codecs, levels and packet counts. wall converts the
// services' lab-clock stamps to wall time.
func agentRows(agents []voice.AgentView, sessions []gateway.SessionInfo, wall func(time.Time) time.Time) []ui.AgentRow {
	byDN := map[string][]gateway.SessionInfo{}
	for _, s := range sessions {
		byDN[string(s.DN)] = append(byDN[string(s.DN)], s)
	}
	out := make([]ui.AgentRow, 0, len(agents))
	for _, ag := range agents {
		row := ui.AgentRow{UserName: ag.UserName, DN: string(ag.DN), State: string(ag.State), Skills: ag.Skills,
			Since: wall(ag.Since), Signed: ag.Registered}
		for _, s := range byDN[string(ag.DN)] {
			if s.ContactCenterID != "" && s.ContactCenterID != string(ag.TenantID) {
				continue // the same DN number in another tenant
			}
			row.Signed = true
			if c := s.Call; c != nil && c.Ended.IsZero() {
				row.Call = agentCall(c, wall)
			}
		}
		out = append(out, row)
	}
	return out
}

func agentCall(c *gateway.CallInfo, wall func(time.Time) time.Time) *ui.AgentCall {
	ac := &ui.AgentCall{Peer: c.Peer, State: c.State, BrowserCodec: c.BrowserCodec, SIPCodec: c.SIPCodec,
		Transcoding: c.Transcoding, Agent: mediaLeg(c.Browser), Customer: mediaLeg(c.SIP)}
	if !c.Started.IsZero() {
		ac.Started = wall(c.Started)
	}
	return ac
}

// mediaLeg is what the gateway received on one leg: the browser leg carries
// the agent's voice, the SIP leg the customer's.
func mediaLeg(l gateway.LegStats) ui.MediaLeg {
	m := ui.MediaLeg{Packets: l.PacketsIn, Lost: l.Lost}
	if l.Heard != nil && l.Heard.ReceivedMS > 0 {
		m.HasLevel, m.LevelDB = true, l.Heard.LastDBFS
	}
	return m
}

// turnRows are the TURN allocations with the traffic each relayed.
// pion/turn keeps an allocation's expiry to itself (clients refresh it), so
// the console shows age, not time left.
func turnRows(allocs []turn.AllocationInfo, wall func(time.Time) time.Time) []ui.TURNAllocation {
	out := make([]ui.TURNAllocation, 0, len(allocs))
	for _, al := range allocs {
		out = append(out, ui.TURNAllocation{Username: al.User, Client: al.ClientAddr + " (" + al.Transport + ")",
			Relay: al.RelayAddr, Peers: al.Peers, Created: wall(al.Created),
			BytesToPeer: al.BytesToPeer, BytesFromPeer: al.BytesFromPeer, PacketsToPeer: al.PacketsToPeer, PacketsFromPeer: al.PacketsFromPeer})
	}
	return out
}

// wallTimes converts lab-clock stamps back to wall time. Lab time is wall
// time plus an offset that only grows, so a stamp maps to exactly one wall
// time once the offset in effect when it was taken is known: wallTimes
// keeps the offset's history from the moves it is told about.
type wallTimes struct {
	mu    sync.Mutex
	moves []clockMove // oldest first; moves[0] is the offset at creation
}

// clockMove is an offset in effect from a wall time on.
type clockMove struct {
	at     time.Time
	offset time.Duration
}

func newWallTimes(c *clock.Lab) *wallTimes {
	w := &wallTimes{moves: []clockMove{{offset: c.Offset()}}}
	c.OnAdvance(func(time.Time) { w.moved(time.Now(), c.Offset()) })
	return w
}

func (w *wallTimes) moved(at time.Time, offset time.Duration) {
	w.mu.Lock()
	w.moves = append(w.moves, clockMove{at: at, offset: offset})
	w.mu.Unlock()
}

// wall is the wall time at which the lab clock read t.
func (w *wallTimes) wall(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.moves) - 1; i > 0; i-- {
		m := w.moves[i]
		cand := t.Add(-m.offset)
		if !cand.Before(m.at) {
			return cand
		}
		// Before the move by the new offset. Under the previous offset it
		// would be after the move: then it was taken in the instant between
		// the move and its report here, with the new offset.
		if !t.Add(-w.moves[i-1].offset).Before(m.at) {
			return cand
		}
	}
	return t.Add(-w.moves[0].offset)
}

func codecLine(browser, sip string, xcoding bool) string {
	s := "browser " + browser + " / SIP " + sip
	if xcoding {
		s += " (transcoding)"
	}
	return s
}

// componentEndpoints says where each component listens, for the overview.
func (a *Appliance) componentEndpoints() map[string]string {
	e := a.Endpoints()
	return map[string]string{
		"redis": e.RedisURL, "postgres": e.PostgresURL, "http": a.http.URL(), "gauth": e.GAuthURL, "gws": e.GWSURL,
		"ges": e.GESAPIURL, "voice": e.SIPURI, "turn": strings.Join(e.TURNURLs, " "), "gateway": e.WebRTCURL,
		"ui": e.ConsoleURL,
	}
}

// tailLogs reads the last n JSON log lines of one component (or of all).
func tailLogs(files map[string]string, component string, n int) ([]ui.LogLine, error) {
	if n <= 0 {
		n = 200
	}
	var out []ui.LogLine
	for name, path := range files {
		if component != "" && name != component {
			continue
		}
		lines, err := lastLines(path, n)
		if err != nil {
			continue // a rotated-away file is not an error for a tail
		}
		for _, l := range lines {
			if line, ok := parseLogLine(l); ok {
				line.Component = name
				out = append(out, line)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// parseLogLine reads one JSON record of slog's JSON handler: time, level and
// msg, and the other fields in their order as attributes (a group's fields
// as group.key). The component, which names the file, is not repeated.
func parseLogLine(line string) (ui.LogLine, bool) {
	var out ui.LogLine
	err := readJSONObject(json.NewDecoder(strings.NewReader(line)), "", func(key string, raw json.RawMessage) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw) // a number, bool, null or array as written
		}
		switch key {
		case "time":
			out.Time, _ = time.Parse(time.RFC3339Nano, s)
		case "level":
			out.Level = s
		case "msg":
			out.Message = s
		case "component":
		default:
			out.Attrs = append(out.Attrs, ui.LogAttr{Key: key, Value: s})
		}
	})
	return out, err == nil
}

// readJSONObject calls f with each field of the object dec is at, in order,
// descending into nested objects (their keys joined with dots).
func readJSONObject(dec *json.Decoder, prefix string, f func(key string, raw json.RawMessage)) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("read log record: not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("read log record: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("read log record: %w", err)
		}
		if len(raw) > 0 && raw[0] == '{' {
			if err := readJSONObject(json.NewDecoder(bytes.NewReader(raw)), prefix+key+".", f); err != nil {
				return err
			}
			continue
		}
		f(prefix+key, raw)
	}
	_, err := dec.Token()
	return err
}

// lastLines returns up to n last lines of a file, reading at most 256 kB.
func lastLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const window = 256 << 10
	if st.Size() > window {
		if _, err := f.Seek(st.Size()-window, 0); err != nil {
			return nil, err
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = lines[n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, sc.Err()
}

// cpuSampler turns the process's CPU time into a percentage of one core over
// the time since the previous sample.
type cpuSampler struct {
	mu    sync.Mutex
	at    time.Time
	ticks int64
}

func (c *cpuSampler) percent() float64 {
	ticks := processTicks()
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	prevAt, prevTicks := c.at, c.ticks
	c.at, c.ticks = now, ticks
	if prevAt.IsZero() || now.Sub(prevAt) <= 0 {
		return 0
	}
	const hz = 100 // USER_HZ on Linux
	used := float64(ticks-prevTicks) / hz
	return used / now.Sub(prevAt).Seconds() * 100
}

// processTicks is utime+stime of this process in clock ticks (/proc/self/stat).
func processTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// rssBytes is this process's resident memory.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
