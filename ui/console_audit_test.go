package ui

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Agents section shows each agent's current call with its media: codec,
// transcoding, the live level and the packet loss of each direction.
func TestConsoleAgentsShowCallMedia(t *testing.T) {
	src := fakeConsole()
	src.Agents = func(context.Context) ([]AgentRow, error) {
		return []AgentRow{
			{UserName: "agent1", DN: "7001", State: "Busy", Since: t0.Add(-2 * time.Minute), Signed: true,
				Call: &AgentCall{Peer: "+12025550100", State: "connected", Started: t0.Add(-65 * time.Second),
					BrowserCodec: "audio/opus", SIPCodec: "PCMU", Transcoding: true,
					Agent:    MediaLeg{Packets: 594, Lost: 6, HasLevel: true, LevelDB: -12.4},
					Customer: MediaLeg{Packets: 600, HasLevel: true, LevelDB: -9}}},
			{UserName: "agent2", DN: "7002", State: "Ready", Since: t0.Add(-time.Minute), Signed: true},
		}, nil
	}
	ts := newTestServer(t, Config{}, Deps{Console: src})
	_, body, _ := get(t, ts.client(t), ts.URL+"/console/section/agents")
	for _, want := range []string{
		"<th>Current call</th>", "<th>Codec</th>", "<th>Transcoding</th>", "<th>Packet loss</th>",
		`data-dn="7001" data-state="Busy" data-in-call="true"`,
		`class="agent-call">+12025550100 (connected, 1m05s)<`,
		`class="agent-codec">browser opus / SIP PCMU<`,
		`class="agent-transcoding">on<`,
		`class="agent-level">agent -12 dBFS · customer -9 dBFS<`,
		`class="agent-loss">agent 1.0% (6 of 600) · customer 0.0% (0 of 600)<`,
		`data-dn="7002" data-state="Ready" data-in-call="false"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("agents section lacks %q", want)
		}
	}
	if n := strings.Count(body, `class="agent-codec">—<`); n != 1 {
		t.Errorf("an agent without a call should show — for the codec (%d found)", n)
	}
}

// The TURN section shows each allocation's relayed traffic both ways, and no
// expiry column that the TURN server can't fill.
func TestConsoleTURNShowsRelayedTraffic(t *testing.T) {
	src := fakeConsole()
	src.TURN = func(context.Context) ([]TURNAllocation, error) {
		return []TURNAllocation{{Username: "agent1", Client: "127.0.0.1:50000 (udp)", Relay: "127.0.0.1:49152",
			Peers: []string{"127.0.0.1"}, Created: t0.Add(-3 * time.Minute),
			BytesToPeer: 12345, PacketsToPeer: 100, BytesFromPeer: 2_500_000, PacketsFromPeer: 15000}}, nil
	}
	ts := newTestServer(t, Config{}, Deps{Console: src})
	_, body, _ := get(t, ts.client(t), ts.URL+"/console/section/turn")
	for _, want := range []string{
		`data-bytes-to-peer="12345" data-bytes-from-peer="2500000"`,
		`class="turn-to-peer">12.3 kB in 100 packets<`, `class="turn-from-peer">2.5 MB in 15000 packets<`,
		"<td>3m00s</td>", "<td>127.0.0.1</td>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("TURN section lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Expires") || strings.Contains(body, "0m00s") {
		t.Errorf("TURN section shows an expiry it does not know:\n%s", body)
	}
}

// Uptimes and durations are wall-clock time: moving the lab clock changes
// lab time on the page, not how long a component has been up.
func TestConsoleDurationsUseWallClock(t *testing.T) {
	st := &fakeConsoleState{}
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsoleWith(st)})
	ts.clk.Advance(355 * time.Hour) // the lab clock moves; wall time does not
	_, body, _ := get(t, ts.client(t), ts.URL+"/")
	for _, want := range []string{
		`<td>redis</td>`, "<td>1h00m00s</td>", // redis: started an hour ago (wall)
		"<td>1m30s</td>", // gateway: 90 s ago
		"<td>5m00s</td>", // agent1's state: 5 minutes ago
	} {
		if !strings.Contains(body, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(body, "355h") || strings.Contains(body, "356h") {
		t.Error("an uptime or duration counts the lab clock's move")
	}
}

// Log lines show their structured fields as key=value, escaped, and the
// filter matches them.
func TestConsoleLogsShowAndFilterAttributes(t *testing.T) {
	src := fakeConsole()
	src.Logs = func(context.Context, string, int) ([]LogLine, error) {
		return []LogLine{
			{Time: t0, Level: "INFO", Component: "gateway", Message: "signed out",
				Attrs: []LogAttr{{"dn", "7005"}, {"user", "agent5"}, {"reason", "idle timeout"}, {"err", `<b>"x"</b>`}}},
			{Time: t0, Level: "INFO", Component: "gateway", Message: "signed in", Attrs: []LogAttr{{"dn", "7001"}}},
		}, nil
	}
	ts := newTestServer(t, Config{}, Deps{Console: src})
	_, body, _ := get(t, ts.client(t), ts.URL+"/console/section/logs?filter=7005")
	want := `signed out <span class="attrs">dn=7005 user=agent5 reason=&#34;idle timeout&#34; err=&#34;&lt;b&gt;\&#34;x\&#34;&lt;/b&gt;&#34;</span>`
	if !strings.Contains(body, want) {
		t.Errorf("log line lacks its attributes, escaped: want %s in\n%s", want, body)
	}
	if strings.Contains(body, "signed in") || strings.Contains(body, "<b>") {
		t.Errorf("filter 7005 kept another line, or a value is not escaped:\n%s", body)
	}
	_, body, _ = get(t, ts.client(t), ts.URL+"/console/section/logs?filter="+url.QueryEscape("reason=\"idle"))
	if !strings.Contains(body, "signed out") {
		t.Error("the filter does not match key=value text")
	}
}

// The reset button says what ResetDemo does: the tenant configuration only.
func TestConsoleResetSaysWhatItDoes(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole()})
	_, body, _ := get(t, ts.client(t), ts.URL+"/console/section/controls")
	if strings.Contains(body, "Callbacks and state are lost") {
		t.Error("the reset confirmation still says callbacks are lost")
	}
	for _, want := range []string{"configuration from the seed", "Callbacks, call history and the lab clock are kept",
		`id="reset-help"`, `data-confirm="Reset the demo tenant&#39;s configuration? Restores`} {
		if !strings.Contains(body, want) {
			t.Errorf("controls lack %q", want)
		}
	}
}

// Errors are shown as errors, and only messages the console produced are
// shown at all.
func TestConsoleStatusMessages(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole()})
	c := ts.client(t)
	_, _, resp := postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"2 weeks"}})
	_, body, _ := get(t, c, ts.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, `<div id="toast" class="toast error" role="alert">Give a positive duration`) {
		t.Errorf("a refused clock move is not shown as an error")
	}
	_, _, resp = postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"15m"}})
	_, body, _ = get(t, c, ts.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, `<div id="toast" class="toast" role="status">Clock moved forward 15m0s`) {
		t.Errorf("a clock move is not shown as a success")
	}
	for _, u := range []string{
		"/?msg=" + url.QueryEscape("Your session expired, call +1 555 0100"),
		"/?msg=anything&err=1",
		// A real message with a signature taken from another message.
		strings.Replace(resp.Header.Get("Location"), "15m0s", "99h0m0s", 1),
	} {
		if _, body, _ := get(t, c, ts.URL+u); strings.Contains(body, `id="toast"`) {
			t.Errorf("%s shows a status the console did not produce", u)
		}
	}
}

// Bad calculator and what-if inputs get an error, never a wrong figure.
func TestConsoleCalculatorsRefuseBadInput(t *testing.T) {
	st := &fakeConsoleState{signIns: 60}
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsoleWith(st)})
	c := ts.client(t)

	_, body, _ := get(t, c, ts.URL+"/console/section/sizing?cpd=1e30&ud=1e30")
	if strings.Contains(body, "-9,223") || strings.Contains(body, `id="size-db"`) {
		t.Errorf("out-of-range sizing still shows figures:\n%s", body)
	}
	if !strings.Contains(body, "Callbacks per day: 1e30 is out of range (0 to 1,000,000,000).") ||
		!strings.Contains(body, `id="sizing-errors" class="toast error"`) {
		t.Errorf("out-of-range sizing lacks its error:\n%s", body)
	}
	if !strings.Contains(body, `id="redis-ops"`) {
		t.Error("a storage input error hid the valid Redis operations figures")
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/sizing?cpd=abc&ud=1")
	if !strings.Contains(body, `Callbacks per day: &#34;abc&#34; is not a number.`) || strings.Contains(body, `id="size-db"`) ||
		!strings.Contains(body, `id="sz-cpd" type="number" min="0" max="1000000000" value="abc"`) {
		t.Errorf("cpd=abc is not refused:\n%s", body)
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/sizing?slot=0&ewt=90")
	if !strings.Contains(body, "Slot minutes: 0 is out of range") || strings.Contains(body, `id="redis-ops"`) {
		t.Errorf("slot=0 is not refused:\n%s", body)
	}

	_, body, _ = get(t, c, ts.URL+"/console/section/scaling?whatif=1&replicas=abc&agents=-5&cpu=xyz")
	for _, want := range []string{`replicas: &#34;abc&#34; is not a number.`, "sign-ins: -5 is out of range", `CPU %: &#34;xyz&#34; is not a number.`,
		`id="scaling-whatif" class="toast error"`, `name="replicas" value="abc"`} {
		if !strings.Contains(body, want) {
			t.Errorf("bad what-if lacks %q", want)
		}
	}
	if strings.Contains(body, "These are what-if figures") || strings.Contains(body, `id="scale-gateway"`) {
		t.Errorf("bad what-if inputs still show a decision:\n%s", body)
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/scaling?whatif=1&replicas=2.5")
	if !strings.Contains(body, "replicas: 2.5 is not a whole number.") {
		t.Errorf("fractional replicas accepted:\n%s", body)
	}

	// gws.unavailable is on: an unparsable "on" must leave it on and say why.
	_, _, resp := postForm(t, c, ts.URL+"/console/faults", url.Values{"name": {"gws.unavailable"}, "on": {"maybe"}})
	if !st.faults["gws.unavailable"] {
		t.Error("on=maybe turned the failure off")
	}
	_, body, _ = get(t, c, ts.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, `class="toast error"`) || !strings.Contains(body, "on must be 1 or 0, not &#34;maybe&#34;") {
		t.Errorf("on=maybe is not reported as an error")
	}
	if got := fmtNum(1e30); strings.HasPrefix(got, "-") || strings.Contains(got, "9,223") {
		t.Errorf("fmtNum(1e30) = %q", got)
	}
}

// Pages declare an icon inline and /favicon.ico answers, so no page load
// ends in a 404 for it.
func TestFavicon(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole()})
	c := ts.client(t)
	code, body, resp := get(t, c, ts.URL+"/favicon.ico")
	if code != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(body, "<svg") {
		t.Errorf("/favicon.ico: %d %q %.40q", code, resp.Header.Get("Content-Type"), body)
	}
	for _, p := range []string{"/", "/softphone/", "/customer/"} {
		if _, body, _ := get(t, c, ts.URL+p); !strings.Contains(body, `<link rel="icon" type="image/svg+xml" href="data:image/svg+xml,`) {
			t.Errorf("%s declares no icon", p)
		}
	}
}

// A screen reader lists buttons by name: no two of the console's buttons
// share one (four fault toggles read "Off: turn on", six snippets "Copy").
// The golden page TestConsolePage keeps is the console as rendered.
func TestConsoleButtonsHaveDistinctNames(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "console.html"))
	if err != nil {
		t.Fatal(err)
	}
	button := regexp.MustCompile(`(?s)<button([^>]*)>(.*?)</button>`)
	label := regexp.MustCompile(`aria-label="([^"]*)"`)
	seen := map[string]int{}
	for _, m := range button.FindAllStringSubmatch(string(b), -1) {
		name := strings.TrimSpace(m[2])
		if l := label.FindStringSubmatch(m[1]); l != nil {
			name = l[1]
		}
		seen[name]++
	}
	if len(seen) == 0 {
		t.Fatal("no buttons in the console page")
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%d buttons named %q", n, name)
		}
	}
}
