package appliance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/freeport"
	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/ges"
	"github.com/cxlab/cxlab/appliance/turn"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/tenant"
	"github.com/cxlab/cxlab/mocks/voice"
	"github.com/cxlab/cxlab/ui"
	"github.com/cxlab/cxlab/ui/gesadapter"
)

// wireServices constructs the services (emulators, Engagement, Voice, TURN,
// gateway, console) in start order, mounts their routes on the one HTTP server
// and says what each adds to the endpoints file. Services talk to each other
// only through the base URL (HTTP), SIP and Redis, never through Go calls.
func (a *Appliance) wireServices() ([]Component, error) {
	cfg := a.cfg
	e := a.http.Echo()
	base := a.http.URL
	logFor := func(name string) *loggerWith { return &loggerWith{a, name} }

	tenants := tenant.NewStore(a.pool, logFor("tenant").get())
	out := []Component{tenants}
	if cfg.Seed != "" {
		sc, err := newSeedComponent(tenants, cfg.Seed)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, _ string) {
		ep.CCID = string(tenant.DemoCCID)
		for i := 1; i <= 4; i++ {
			ep.Agents = append(ep.Agents, Agent{Username: fmt.Sprintf("agent%d", i), Password: "agent123", DN: fmt.Sprintf("700%d", i)})
		}
		ep.Supervisor = &Agent{Username: "supervisor", Password: "super123"}
		ep.APIKey = demoAPIKey
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Services, ep.CallinGroups, ep.QueueNumbers = nil, nil, map[string]string{}
		if svcs, err := tenants.CallbackServices(ctx, tenant.DemoCCID); err == nil {
			for _, sv := range svcs {
				ep.Services = append(ep.Services, sv.Name)
				if sv.DialInNumber != "" {
					ep.QueueNumbers[sv.VirtualQueue] = sv.DialInNumber
				}
			}
		}
		if groups, err := tenants.CallinGroups(ctx, tenant.DemoCCID); err == nil {
			for _, g := range groups {
				ep.CallinGroups = append(ep.CallinGroups, g.Name)
			}
		}
		ep.OAuthClients = map[string]string{
			"webrtc-clientid": "webrtc-secret", "ges_client": "ges-secret", "ors_client": "ors-secret",
			"cxlab-console": "console-secret", "external_api_client": "external-secret",
		}
	})

	if cfg.Runs("gauth") {
		g, err := gauth.New(gauth.Config{PublicURL: base}, tenants, a.pool, logFor("gauth").get(), a.reg, a.clock)
		if err != nil {
			return nil, fmt.Errorf("gauth: %w", err)
		}
		g.Mount(e)
		out = append(out, g)
		a.gauth = g
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, b string) { ep.GAuthURL = b + "/auth/v3" })
	}

	var vs *voice.Server
	dir := &voiceDirectory{store: tenants, ttl: 2 * time.Second}
	sipPort := cfg.SIP.Port
	if sipPort == 0 && cfg.Runs("voice") {
		// The gateway needs Voice's address when it is built, so port 0 is
		// resolved here to a number free for both UDP and TCP right now, and
		// below the ephemeral range, where it stays free until Voice binds it.
		p, err := freeport.Pick(cfg.SIP.Host, freeport.TCP|freeport.UDP, 1)
		if err != nil {
			return nil, err
		}
		sipPort = p
	}
	if cfg.Runs("voice") {
		// With GES in this process, ORS reports go to it directly; otherwise
		// over HTTP to GESURL (contract 8).
		var reporter voice.Reporter
		if cfg.Runs("ges") {
			reporter = orsReporter{ges: func() *ges.Service { return a.ges }}.report
		}
		var err error
		vs, err = voice.New(voice.Config{
			SIPHost: cfg.SIP.Host, SIPPort: sipPort, SIPPortSet: true,
			GAuthURL: base(), GESURL: base(),
			ReadBlock: 30 * time.Second, // an idle stream costs one XREADGROUP per 30 s
			Consumer:  orsConsumer(a.dir.path),
		}, voice.Deps{Logger: logFor("voice").get(), Registerer: a.reg, Clock: a.clock, Directory: dir, Redis: a.redis.Client(),
			HTTPClient: a.selfClient(10 * time.Second),
			Reporter:   reporter})
		if err != nil {
			return nil, fmt.Errorf("voice: %w", err)
		}
		vs.Mount(e)
		a.voice = vs
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, _ string) {
			if addr := vs.SIPAddr(); addr != nil {
				ep.SIPURI = fmt.Sprintf("sip:%s;transport=udp", addr.String())
			}
			ep.Customers = simulatedCustomers
		})
	}

	if cfg.Runs("gws") {
		var stats gws.LiveStats = gws.NoStats{}
		var wsVoice gws.WorkspaceVoice = gws.NoVoice{}
		if vs != nil {
			stats = voiceStats{voice: vs}
			wsVoice = workspaceVoice{voice: vs}
		}
		w, err := gws.New(gws.Config{AuthURL: base, Workspace: gws.WorkspaceConfig{Voice: wsVoice}, HTTPClient: a.selfClient(5 * time.Second)}, tenants, stats, logFor("gws").get(), a.reg, a.clock)
		if err != nil {
			return nil, fmt.Errorf("gws: %w", err)
		}
		w.Mount(e)
		out = append(out, w)
		a.gws = w
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, b string) { ep.GWSURL = b })
	}

	if cfg.Runs("ges") {
		// GES reaches GAuth and GWS over HTTP with its own client credentials,
		// as the real service does; a platform call only happens at request
		// time, after every component has started.
		platform := ges.NewHTTPPlatform(base(), "ges_client", "ges-secret", a.selfClient(10*time.Second))
		// The monitor sleeps until the next known due time and wakes on local
		// creates; the poll only catches work left by another node, so it can
		// be slow and keep idle Redis traffic near zero.
		g, err := ges.New(ges.Config{PollInterval: 15 * time.Second,
			TenantCreatesPerSec: float64(cfg.GES.TenantCreatesPerSec), TenantCreateBurst: cfg.GES.TenantCreateBurst,
			MaxActivePerNumber: cfg.GES.MaxActivePerNumber, StrandedAfter: cfg.GES.StrandedAfter}, a.pool, a.redis.Client(), platform, a.clock, logFor("ges").get(), a.reg, base())
		if err != nil {
			return nil, fmt.Errorf("ges: %w", err)
		}
		g.Mount(e)
		a.clock.OnAdvance(func(time.Time) { g.Wake() })
		out = append(out, g)
		a.ges = g
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, b string) {
			ep.GESAPIURL = b + "/engagement/v3"
			ep.GESUIURL = b + "/ges/"
		})
	}

	if vs != nil {
		out = append(out, vs)
	}

	if cfg.Runs("turn") {
		secret, err := a.turnSecret()
		if err != nil {
			return nil, err
		}
		tc := turn.Default()
		tc.Host, tc.Port, tc.PortSetting = cfg.TURN.Host, cfg.TURN.Port, "--turn-port"
		tc.RelayIP = cfg.TURN.RelayIP
		tc.MinPort, tc.MaxPort = cfg.TURN.MinRelayPort, cfg.TURN.MaxRelayPort
		tc.AuthSecret = secret
		tc.UserQuota = cfg.TURN.UserQuota
		tc.AllowedPeers = cfg.TURN.AllowedPeers
		// No relay to the appliance's own services (the gateway's media port
		// stays a peer: relayed calls need it).
		tc.ProtectedPorts = func() []int {
			return []int{urlPort(a.http.URL()), urlPort(a.redis.URL()), urlPort(a.pg.DSN()), sipPort}
		}
		ts, err := turn.New(tc, logFor("turn").get(), a.reg, a.clock)
		if err != nil {
			return nil, fmt.Errorf("turn: %w", err)
		}
		out = append(out, ts)
		a.turn = ts
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, _ string) {
			ep.TURNURLs = ts.URLs()
			ep.TURNSecret = secret
			ep.TURNNote = "TURN REST shared secret (coturn use-auth-secret); a lab value, not for production"
		})
	}
	if cfg.Runs("gateway") {
		gc := gateway.Default()
		gc.MediaHost, gc.MediaPort = cfg.HTTP.Host, cfg.Gateway.MediaPort
		if ip := net.ParseIP(gc.MediaHost); ip == nil || ip.IsUnspecified() {
			gc.MediaHost = "127.0.0.1"
		}
		gc.SIPHost = cfg.SIP.Host
		gc.VoiceSIPAddr = net.JoinHostPort(cfg.SIP.Host, strconv.Itoa(sipPort))
		gc.AuthURL = base()
		gc.HTTPClient = a.selfClient(10 * time.Second)
		gc.EnableTranscoding = &cfg.Gateway.EnableTranscoding
		var ice gateway.TURN
		if a.turn != nil {
			ice = a.turn
		}
		gw, err := gateway.New(gc, logFor("gateway").get(), a.reg, a.clock, ice)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		gw.Mount(e)
		out = append(out, gw)
		a.gateway = gw
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, b string) { ep.WebRTCURL = b + gc.BasePath })
	}
	if cfg.Runs("console") {
		var callbacks ui.Callbacks
		if a.ges != nil {
			callbacks = gesadapter.New(a.ges)
		}
		u, err := ui.New(ui.Config{Version: Version}, ui.Deps{Callbacks: callbacks, Console: a.consoleSources(tenants), HTTPClient: a.selfClient(10 * time.Second)},
			logFor("console").get(), a.clock)
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		u.Mount(e)
		out = append(out, u)
		a.endpointHooks = append(a.endpointHooks, func(ep *Endpoints, b string) { ep.ConsoleURL = b + "/" })
	}
	// A tenant change made through the admin paths (seed, user deletion, demo
	// reset) is in effect when its request returns: the readers that cache
	// the directory drop their copies, and Voice logs out removed agents.
	tenants.OnChange(func(ccid tenant.CCID) {
		dir.invalidate()
		if vs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			vs.DirectoryChanged(ctx)
			cancel()
		}
		if a.ges != nil {
			a.ges.RefetchConfig(ges.TenantID(ccid))
		}
	})
	return out, nil
}

// freeUDPTCPPort finds a port number free for both UDP and TCP on host.
const demoAPIKey = "cxlab-demo-api-key-0000000000000000"

// simulatedCustomers is the Voice emulator's number plan (mocks/voice doc).
var simulatedCustomers = map[string]string{
	"+12025550100": "answers at once, plays 440 Hz",
	"+12025550101": "answers, plays a spoken-like prompt",
	"+12025550102": "busy (486)",
	"+12025550103": "never answers (480 after the no-answer timeout)",
	"+12025550104": "answers after 3 s, plays 440 Hz",
	"+12025550105": "answers, sends DTMF 1234#, then 440 Hz",
	"+12025550106": "answers, hangs up after 5 s",
	"+12025550107": "fails (503)",
}

// turnSecret is the configured TURN REST secret, or one generated on first
// start and kept in the data dir so credentials survive restarts.
func (a *Appliance) turnSecret() (string, error) {
	if a.cfg.TURN.Secret != "" {
		return a.cfg.TURN.Secret, nil
	}
	path := a.dir.sub("turn-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read TURN secret: %w", err)
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate TURN secret: %w", err)
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write TURN secret: %w", err)
	}
	return s, nil
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable DSN>"
	}
	return u.Redacted()
}

// urlPort is the port of a URL or DSN, 0 when it names none.
func urlPort(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// orsConsumer names this process's ORS consumer in the NewCallbackStream
// group: the host and the data dir, which one process at a time holds (its
// lock). Two processes on one host sharing a Redis are two consumers, each
// taking over the other's pending callbacks only after its lease lapses; a
// restart on the same data dir resumes its own at once. Named after the host
// alone, two processes on one host were one consumer: a restart re-read the
// other's pending entries (both dialled), and a kill -9 stranded them.
func orsConsumer(dataDir string) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	sum := sha256.Sum256([]byte(dataDir))
	return fmt.Sprintf("voice-%s-%x", h, sum[:4])
}
