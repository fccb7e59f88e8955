package gws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// The Workspace API v3 (what an agent desktop such as WWE talks to): a session
// opened with a GAuth token and kept in the WORKSPACE_SESSIONID cookie, the
// voice channel activated on the agent's DN, agent state and call control
// handed to Voice, and Voice's changes pushed over CometD (cometd.go). Routes,
// envelopes and notification shapes follow Genesys' agent-api-simulator and
// workspace-client-js (GenesysPureEngage on GitHub).

// VoiceDN is an agent DN as Voice reports it. State is Voice's agent state:
// Ready, NotReady, Busy, AfterCallWork or LoggedOut.
type VoiceDN struct {
	Number string
	State  string
}

// VoiceCall is a call at a DN as Voice reports it. State is Voice's: dialing,
// queued, ivr, ringing, connected, held or ended.
type VoiceCall struct {
	ID, Kind, State, From, To, AgentDN string
	// LeftDN, in an event, is the agent DN the call rang at and left
	// unanswered (no answer, or a reject): released there, it goes on.
	LeftDN   string
	UserData map[string]string
}

// VoiceEvent is one change at a watched DN: DN or Call is set.
type VoiceEvent struct {
	DN   *VoiceDN
	Call *VoiceCall
}

// WorkspaceVoice is what the Workspace API needs of Voice; the composition
// root wires it to the Voice emulator. Call operations are answer, hold,
// retrieve and release.
type WorkspaceVoice interface {
	AgentDN(ctx context.Context, ccid tenant.CCID, dn string) (VoiceDN, error)
	SetAgentState(ctx context.Context, ccid tenant.CCID, dn, state string) error
	CallsAt(ctx context.Context, ccid tenant.CCID, dn string) ([]VoiceCall, error)
	ControlCall(ctx context.Context, ccid tenant.CCID, dn, callID, op string) error
	// Watch delivers the changes at dn until stop; the channel is closed by
	// stop or when the watcher fell buffer events behind.
	Watch(ccid tenant.CCID, dn string, buffer int) (events <-chan VoiceEvent, stop func())
}

// Errors a WorkspaceVoice returns for the API to map: no such call at the DN
// (404), refused in the current state (409), Voice absent (503).
var (
	ErrVoiceNotFound    = errors.New("call not found at this DN")
	ErrVoiceRefused     = errors.New("refused by Voice")
	ErrVoiceUnavailable = errors.New("voice is not running")
)

// NoVoice is the WorkspaceVoice used when Voice is absent.
type NoVoice struct{}

// AgentDN reports the DN logged out.
func (NoVoice) AgentDN(_ context.Context, _ tenant.CCID, dn string) (VoiceDN, error) {
	return VoiceDN{Number: dn, State: "LoggedOut"}, nil
}

// SetAgentState fails: there is no Voice.
func (NoVoice) SetAgentState(context.Context, tenant.CCID, string, string) error {
	return ErrVoiceUnavailable
}

// CallsAt returns no calls.
func (NoVoice) CallsAt(context.Context, tenant.CCID, string) ([]VoiceCall, error) { return nil, nil }

// ControlCall fails: there is no Voice.
func (NoVoice) ControlCall(context.Context, tenant.CCID, string, string, string) error {
	return ErrVoiceUnavailable
}

// Watch returns a channel that never delivers.
func (NoVoice) Watch(tenant.CCID, string, int) (<-chan VoiceEvent, func()) {
	ch := make(chan VoiceEvent)
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

var _ WorkspaceVoice = NoVoice{}

// WorkspaceConfig tunes the Workspace API and its CometD transport.
type WorkspaceConfig struct {
	// Voice serves agent state and call control. Default NoVoice.
	Voice WorkspaceVoice
	// LongPoll is how long a /meta/connect is held when there is nothing to
	// deliver. Default 25s.
	LongPoll time.Duration
	// ClientTimeout drops a CometD client that has not connected for this
	// long. Default 60s.
	ClientTimeout time.Duration
	// QueueLimit is how many notifications may wait for one CometD client;
	// past it the client is dropped and must handshake again (and so reads
	// the state afresh). Default 256.
	QueueLimit int
	// SessionIdle ends a session not used for this long. Default 30m.
	SessionIdle time.Duration
	// MaxSessions bounds the open sessions. Default 1000.
	MaxSessions int
}

func (c WorkspaceConfig) withDefaults() WorkspaceConfig {
	if c.Voice == nil {
		c.Voice = NoVoice{}
	}
	if c.LongPoll <= 0 {
		c.LongPoll = 25 * time.Second
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = 60 * time.Second
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 256
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 30 * time.Minute
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1000
	}
	return c
}

// sessionCookie is the Workspace session cookie the real GWS sets.
const sessionCookie = "WORKSPACE_SESSIONID"

// maxSessionsPerUser bounds the sessions of one user (a desktop reloaded many
// times); the oldest goes first.
const maxSessionsPerUser = 8

// switchName names the emulated switch in DN objects (the simulator's value).
const switchName = "SIP_Switch"

// workspace holds the sessions and CometD clients. Transport times (expiry,
// long polls) run on the wall clock: moving the lab clock must not sign
// desktops out.
type workspace struct {
	s     *Server
	cfg   WorkspaceConfig
	voice WorkspaceVoice

	mu       sync.Mutex
	sessions map[string]*wsSession
	clients  map[string]*cometClient
}

// wsSession is one signed-in desktop.
type wsSession struct {
	id      string
	token   string // the GAuth access token; never logged
	p       Principal
	user    tenant.User
	cc      tenant.ContactCenter
	groups  []tenant.AgentGroup
	dn      string // the activated voice DN; "" before activate-channels
	seen    time.Time
	created time.Time
	clients map[string]*cometClient
}

// mountWorkspace registers the Workspace API routes.
func (s *Server) mountWorkspace(e *echo.Echo) {
	cfg := s.cfg.Workspace.withDefaults()
	w := &workspace{s: s, cfg: cfg, voice: cfg.Voice, sessions: map[string]*wsSession{}, clients: map[string]*cometClient{}}
	base := []echo.MiddlewareFunc{s.count("workspace"), s.injectFailures, s.limitBody}
	withSession := append(slices.Clone(base), w.authSession)
	e.POST("/workspace/v3/initialize-workspace", w.initialize, base...)
	e.GET("/workspace/v3/current-session", w.currentSession, withSession...)
	e.GET("/workspace/v3/configuration", w.configuration, withSession...)
	e.POST("/workspace/v3/activate-channels", w.activateChannels, withSession...)
	e.POST("/workspace/v3/logout", w.logout, withSession...)
	e.GET("/workspace/v3/security/exchange-token", w.exchangeToken, withSession...)
	e.POST("/workspace/v3/security/exchange-token", w.exchangeToken, withSession...)
	e.POST("/workspace/v3/voice/ready", w.agentState("Ready"), withSession...)
	e.POST("/workspace/v3/voice/not-ready", w.agentState("NotReady"), withSession...)
	e.POST("/workspace/v3/voice/make-call", w.makeCall, withSession...)
	e.POST("/workspace/v3/voice/calls/:id/:op", w.callOp, withSession...)
	e.POST("/workspace/v3/notifications", w.notifications, withSession...)
	e.POST("/workspace/v3/notifications/*", w.notifications, withSession...)
	// Everything else under /workspace/v3 (voice login/logout, DND, forward,
	// targets, reporting...) answers in the API's envelope, so that a client
	// reading status.message learns what is not emulated.
	e.Any("/workspace/v3/*", func(c echo.Context) error {
		return v3Error(c, http.StatusNotFound, fmt.Sprintf("%s %s is not emulated by CX Lab's Workspace API (see README: initialize-workspace, current-session, configuration, activate-channels, logout, security/exchange-token, voice/ready, voice/not-ready, voice/calls/{id}/answer|hold|retrieve|release, notifications)",
			c.Request().Method, c.Request().URL.Path))
	}, base...)
}

const wsSessionKey = "gws.workspace.session"

func wsSessionOf(c echo.Context) *wsSession {
	ss, _ := c.Get(wsSessionKey).(*wsSession)
	return ss
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

// wsAccepted is the answer to a request Workspace carries out asynchronously
// (status code 1 and an operationId, as the simulator answers).
func wsAccepted(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"status": status{Code: 1}, "operationId": newID()})
}

// initialize opens a session for the user of a GAuth Bearer token. The code
// grant variant (?code=&redirect_uri=) is not emulated: GWS would need its own
// GAuth client to redeem the code.
func (w *workspace) initialize(c echo.Context) error {
	h := c.Request().Header.Get("Authorization")
	scheme, raw, found := strings.Cut(h, " ")
	raw = strings.TrimSpace(raw)
	if !found || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		if c.QueryParam("code") != "" {
			return v3Error(c, http.StatusBadRequest, "the authorization code variant is not emulated: send Authorization: Bearer <GAuth access token>")
		}
		return v3Error(c, http.StatusUnauthorized, "Authorization: Bearer <GAuth access token> required")
	}
	ctx := c.Request().Context()
	p, err := w.s.verifier.verify(ctx, raw)
	if err != nil {
		if errors.Is(err, errUnauthorized) {
			return v3Error(c, http.StatusUnauthorized, "invalid token")
		}
		w.s.log.Warn("cannot verify token with GAuth", "err", err)
		return v3Error(c, http.StatusServiceUnavailable, "authentication service unavailable")
	}
	if !p.IsUser() || p.CCID == "" {
		return v3Error(c, http.StatusForbidden, "a user token of a contact center is required")
	}
	u, err := w.s.tenants.UserByDBID(ctx, tenant.DBID(p.DBID))
	if err != nil {
		return w.s.storeError(c, "user", err)
	}
	cc, err := w.s.tenants.ContactCenter(ctx, tenant.CCID(p.CCID))
	if err != nil {
		return w.s.storeError(c, "contact center", err)
	}
	all, err := w.s.tenants.AgentGroups(ctx, cc.ID)
	if err != nil {
		return w.s.storeError(c, "agent groups", err)
	}
	var groups []tenant.AgentGroup
	for _, g := range all {
		if slices.Contains(g.Members, u.UserName) {
			groups = append(groups, g)
		}
	}
	now := time.Now()
	ss := &wsSession{id: newID(), token: raw, p: p, user: u, cc: cc, groups: groups, seen: now, created: now,
		clients: map[string]*cometClient{}}
	w.mu.Lock()
	w.sweepLocked(now)
	if len(w.sessions) >= w.cfg.MaxSessions {
		w.mu.Unlock()
		return v3Error(c, http.StatusServiceUnavailable, "too many Workspace sessions")
	}
	var mine []*wsSession
	for _, o := range w.sessions {
		if o.p.DBID == p.DBID {
			mine = append(mine, o)
		}
	}
	slices.SortFunc(mine, func(a, b *wsSession) int { return a.created.Compare(b.created) })
	for len(mine) >= maxSessionsPerUser {
		w.endSessionLocked(mine[0])
		mine = mine[1:]
	}
	w.sessions[ss.id] = ss
	w.mu.Unlock()
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: ss.id, Path: "/workspace", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Request().TLS != nil})
	w.s.log.Info("workspace session started", "user", u.UserName, "ccid", cc.ID)
	return c.JSON(http.StatusOK, map[string]any{"status": status{Code: 1}})
}

// authSession finds the session of the cookie and checks its token is still
// good (GAuth sign-out ends the session).
func (w *workspace) authSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(sessionCookie)
		now := time.Now()
		w.mu.Lock()
		var ss *wsSession
		if err == nil {
			ss = w.sessions[ck.Value]
			if ss != nil && now.Sub(ss.seen) > w.cfg.SessionIdle {
				w.endSessionLocked(ss)
				ss = nil
			}
		}
		if ss != nil {
			ss.seen = now
		}
		w.mu.Unlock()
		if ss == nil {
			return v3Error(c, http.StatusUnauthorized, "no Workspace session: POST /workspace/v3/initialize-workspace with a GAuth Bearer token first")
		}
		if _, err := w.s.verifier.verify(c.Request().Context(), ss.token); err != nil {
			if errors.Is(err, errUnauthorized) {
				w.mu.Lock()
				w.endSessionLocked(ss)
				w.mu.Unlock()
				return v3Error(c, http.StatusUnauthorized, "the session's token is no longer valid")
			}
			return v3Error(c, http.StatusServiceUnavailable, "authentication service unavailable")
		}
		c.Set(wsSessionKey, ss)
		return next(c)
	}
}

// endSessionLocked closes a session and drops its CometD clients.
func (w *workspace) endSessionLocked(ss *wsSession) {
	for _, cl := range ss.clients {
		w.dropClientLocked(cl)
	}
	delete(w.sessions, ss.id)
	w.s.log.Info("workspace session ended", "user", ss.user.UserName, "ccid", ss.cc.ID)
}

// sweepLocked ends idle sessions and drops clients that stopped connecting.
func (w *workspace) sweepLocked(now time.Time) {
	for _, ss := range w.sessions {
		if now.Sub(ss.seen) > w.cfg.SessionIdle {
			w.endSessionLocked(ss)
		}
	}
	for _, cl := range w.clients {
		if cl.holding == nil && now.Sub(cl.seen) > w.cfg.ClientTimeout {
			w.dropClientLocked(cl)
		}
	}
}

// userObject is the user as current-session and the initialization
// notification give it (the simulator's agent record; agentId added because
// workspace-client-js reads it in activateChannels).
func (ss *wsSession) userObject() map[string]any {
	u := ss.user
	return map[string]any{"DBID": u.DBID, "dbid": u.DBID, "userName": u.UserName, "firstName": u.FirstName, "lastName": u.LastName,
		"emailAddress": u.Email, "employeeId": u.UserName, "agentLogin": u.DN, "agentId": u.DN, "defaultPlace": u.DN,
		"roles": u.Roles, "contactCenterId": ss.cc.ID, "tenant": ss.cc.Name, "userProperties": []any{}}
}

// configurationObject answers types (comma- or underscore-separated; default
// actionCodes, agentGroups, settings). Settings are the tenant's options by
// section; action codes, business attributes and transactions are empty.
func (ss *wsSession) configurationObject(types string) map[string]any {
	want := map[string]bool{}
	for t := range strings.FieldsFuncSeq(types, func(r rune) bool { return r == ',' || r == '_' || r == ' ' }) {
		want[t] = true
	}
	if len(want) == 0 {
		want = map[string]bool{"actionCodes": true, "agentGroups": true, "settings": true}
	}
	out := map[string]any{}
	if want["actionCodes"] {
		out["actionCodes"] = []any{}
	}
	if want["agentGroups"] {
		groups := []map[string]any{}
		for _, g := range ss.groups {
			props := g.UserProperties
			if props == nil {
				props = map[string]map[string]string{}
			}
			groups = append(groups, map[string]any{"name": g.Name, "userProperties": props})
		}
		out["agentGroups"] = groups
	}
	if want["settings"] {
		settings := ss.cc.Options
		if settings == nil {
			settings = map[string]map[string]string{}
		}
		out["settings"] = settings
	}
	if want["businessAttributes"] {
		out["businessAttributes"] = []any{}
	}
	if want["workspaceTransactions"] || want["transactions"] {
		out["transactions"] = []any{}
	}
	return out
}

func (w *workspace) currentSession(c echo.Context) error {
	ss := wsSessionOf(c)
	user := ss.userObject()
	w.mu.Lock()
	dn := ss.dn
	w.mu.Unlock()
	if dn != "" {
		ctx := c.Request().Context()
		d, err := w.voice.AgentDN(ctx, ss.cc.ID, dn)
		if err != nil {
			return w.voiceError(c, err)
		}
		calls, err := w.voice.CallsAt(ctx, ss.cc.ID, dn)
		if err != nil {
			return w.voiceError(c, err)
		}
		out := []map[string]any{}
		for _, vc := range calls {
			if st := wsCallState(vc, dn); st != "" && st != "Released" {
				out = append(out, callObject(vc, dn, st))
			}
		}
		user["activeSession"] = map[string]any{"dn": dnObject(d), "calls": out}
	}
	return v3OK(c, map[string]any{"user": user, "configuration": ss.configurationObject("")})
}

func (w *workspace) configuration(c echo.Context) error {
	return v3OK(c, wsSessionOf(c).configurationObject(c.QueryParam("types")))
}

// activateChannels activates the voice channel on data.dn (or the user's own
// DN when absent). The DN must be one of the tenant's and not another
// person's.
func (w *workspace) activateChannels(c echo.Context) error {
	ss := wsSessionOf(c)
	var body struct {
		Data struct {
			AgentID   string   `json:"agentId"`
			DN        string   `json:"dn"`
			PlaceName string   `json:"placeName"`
			Channels  []string `json:"channels"`
		} `json:"data"`
	}
	if done, err := decodeJSON(c, &body); !done {
		return err
	}
	dn := body.Data.DN
	if dn == "" && body.Data.PlaceName != "" {
		dn = body.Data.PlaceName // places are named after their DN in CX Lab
	}
	if dn == "" {
		dn = ss.user.DN
	}
	if dn == "" {
		return v3Error(c, http.StatusBadRequest, "data.dn is required: the user has no DN of its own")
	}
	if len(body.Data.Channels) > 0 && !slices.Contains(body.Data.Channels, "voice") {
		return v3Error(c, http.StatusBadRequest, `only the "voice" channel is emulated`)
	}
	ctx := c.Request().Context()
	dns, err := w.s.tenants.DNs(ctx, ss.cc.ID)
	if err != nil {
		return w.s.storeError(c, "dns", err)
	}
	if !slices.ContainsFunc(dns, func(d tenant.DN) bool { return d.Number == dn }) {
		return v3Error(c, http.StatusNotFound, "DN "+dn+" is not configured in this contact center")
	}
	if dn != ss.user.DN {
		users, err := w.s.tenants.Users(ctx, ss.cc.ID)
		if err != nil {
			return w.s.storeError(c, "users", err)
		}
		if slices.ContainsFunc(users, func(u tenant.User) bool { return u.DN == dn }) {
			return v3Error(c, http.StatusForbidden, "DN "+dn+" belongs to another person")
		}
	}
	w.mu.Lock()
	ss.dn = dn
	for _, cl := range ss.clients {
		if cl.subs[channelVoice] {
			w.watchVoiceLocked(ctx, cl)
		}
	}
	w.mu.Unlock()
	w.s.log.Info("workspace voice channel activated", "user", ss.user.UserName, "dn", dn)
	return wsAccepted(c)
}

func (w *workspace) logout(c echo.Context) error {
	ss := wsSessionOf(c)
	w.mu.Lock()
	w.endSessionLocked(ss)
	w.mu.Unlock()
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/workspace", MaxAge: -1, HttpOnly: true})
	return v3OK(c, nil)
}

// exchangeToken returns a JWT for other services (the softphone uses it with
// the jwt-bearer grant): GAuth's X-GWS-User JWT for the session's token.
func (w *workspace) exchangeToken(c echo.Context) error {
	ss := wsSessionOf(c)
	u := strings.TrimRight(w.s.cfg.AuthURL(), "/") + "/auth/v3/jwt-userinfo"
	req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, u, nil)
	if err != nil {
		return v3Error(c, http.StatusInternalServerError, "exchange token: bad GAuth URL")
	}
	req.Header.Set("Authorization", "Bearer "+ss.token)
	resp, err := w.s.cfg.HTTPClient.Do(req)
	if err != nil {
		w.s.log.Warn("exchange token: GAuth unreachable", "err", err)
		return v3Error(c, http.StatusServiceUnavailable, "authentication service unavailable")
	}
	resp.Body.Close()
	tok := resp.Header.Get("X-GWS-User")
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		// The session's token was revoked (signed out) or has expired.
		return v3Error(c, http.StatusUnauthorized, "the session's GAuth token is no longer valid: initialize the workspace again")
	case resp.StatusCode != http.StatusOK || tok == "":
		return v3Error(c, http.StatusBadGateway, fmt.Sprintf("GAuth jwt-userinfo answered %d", resp.StatusCode))
	}
	// expires_in is the JWT's own lifetime (GAuth's UserinfoJWTTTL, 1800 s
	// by default as in Genesys' simulator): a client caching the token for
	// that long must not find it refused.
	expiresIn := 1800
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err == nil && claims.ExpiresAt != nil {
		// Just issued: what is left of it by the lab's clock (its iat may be
		// the wall clock's, behind a lab clock moved ahead).
		expiresIn = max(0, int(math.Ceil(claims.ExpiresAt.Sub(w.s.clk.Now()).Seconds())))
	}
	return v3OK(c, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": expiresIn})
}

// activeDN returns the session's activated DN or writes the refusal.
func (w *workspace) activeDN(c echo.Context) (string, error, bool) {
	ss := wsSessionOf(c)
	w.mu.Lock()
	dn := ss.dn
	w.mu.Unlock()
	if dn == "" {
		return "", v3Error(c, http.StatusConflict, "the voice channel is not active: POST /workspace/v3/activate-channels first"), false
	}
	return dn, nil, true
}

func (w *workspace) agentState(state string) echo.HandlerFunc {
	return func(c echo.Context) error {
		dn, err, good := w.activeDN(c)
		if !good {
			return err
		}
		ctx, cc := c.Request().Context(), wsSessionOf(c).cc.ID
		mode, err := stateWorkMode(c)
		if err != nil {
			return v3Error(c, http.StatusBadRequest, "the body is not a JSON object such as {\"data\":{\"agentWorkMode\":\"AfterCallWork\"}}: "+err.Error())
		}
		if !slices.Contains(workModes, mode) {
			return v3Error(c, http.StatusBadRequest, fmt.Sprintf("agentWorkMode %q is none of %s", mode, strings.Join(workModes[1:], ", ")))
		}
		want := state
		if state == "NotReady" && mode == "AfterCallWork" {
			// The desktop asks for wrap-up: NotReady with agentWorkMode
			// AfterCallWork until the agent is Ready, whether the timed
			// wrap-up after a call is under way or not. The other work modes
			// are plain NotReady; reason codes are not kept.
			want = "AfterCallWork"
		}
		if err := w.voice.SetAgentState(ctx, cc, dn, want); err != nil {
			return w.voiceError(c, err)
		}
		return wsAccepted(c)
	}
}

// workModes are the agentWorkMode values of workspace-client-js ("" when
// absent).
var workModes = []string{"", "Unknown", "AuxWork", "AfterCallWork", "LegalGuard", "NoCallDisconnect", "WalkAway"}

// stateWorkMode is the agentWorkMode of a ready or not-ready request
// ({"data":{"agentWorkMode":...},"reasonCode":...} as workspace-client-js
// sends it); "" when absent. The body is optional; one that is there must
// be a JSON object.
func stateWorkMode(c echo.Context) (string, error) {
	var body struct {
		Data struct {
			AgentWorkMode string `json:"agentWorkMode"`
		} `json:"data"`
	}
	if err := json.NewDecoder(c.Request().Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return body.Data.AgentWorkMode, nil
}

// callOps maps the Workspace call operations to Voice's.
var callOps = map[string]string{"answer": "answer", "hold": "hold", "retrieve": "retrieve", "release": "release"}

func (w *workspace) callOp(c echo.Context) error {
	op, found := callOps[c.Param("op")]
	if !found {
		return v3Error(c, http.StatusNotFound, "call operation "+c.Param("op")+" is not emulated (answer, hold, retrieve, release are)")
	}
	dn, err, good := w.activeDN(c)
	if !good {
		return err
	}
	if err := w.voice.ControlCall(c.Request().Context(), wsSessionOf(c).cc.ID, dn, c.Param("id"), op); err != nil {
		return w.voiceError(c, err)
	}
	return wsAccepted(c)
}

// makeCall is refused: Voice cannot originate a call from a WebRTC DN (it has
// no media offer of its own to send the browser). Dial from the softphone;
// the call then shows on /workspace/v3/voice as Dialing/Established.
func (w *workspace) makeCall(c echo.Context) error {
	return v3Error(c, http.StatusNotImplemented, "make-call is not emulated: dial from the softphone (the call then shows on /workspace/v3/voice)")
}

// voiceError maps Voice's errors to the envelope in one place.
func (w *workspace) voiceError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, ErrVoiceNotFound):
		return v3Error(c, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrVoiceRefused):
		return v3Error(c, http.StatusConflict, err.Error())
	case errors.Is(err, ErrVoiceUnavailable):
		return v3Error(c, http.StatusServiceUnavailable, err.Error())
	}
	w.s.log.Warn("voice operation failed", "err", err)
	return v3Error(c, http.StatusBadGateway, "voice operation failed: "+err.Error())
}

// ---- notification shapes ----

// dnObject is a DN as DnStateChanged carries it (the simulator's shape). The
// agentState is Ready, NotReady or LoggedOut: a DN on a call stays Ready (as
// T-Server reports it) and wrap-up is NotReady with agentWorkMode
// AfterCallWork.
func dnObject(d VoiceDN) map[string]any {
	state, mode, caps := "LoggedOut", "Unknown", []string{}
	switch d.State {
	case "Ready":
		state, caps = "Ready", []string{"not-ready"}
	case "Busy":
		state = "Ready"
	case "NotReady":
		state, caps = "NotReady", []string{"ready"}
	case "AfterCallWork":
		state, mode, caps = "NotReady", "AfterCallWork", []string{"ready"}
	}
	return map[string]any{"number": d.Number, "switchName": switchName, "agentId": d.Number, "agentState": state,
		"agentWorkMode": mode, "capabilities": caps, "timestamp": time.Now().UnixMilli()}
}

// wsCallState is the call's state as the agent at dn sees it ("" while the
// call has not reached the DN): Dialing, Ringing, Established, Held, Released.
func wsCallState(vc VoiceCall, dn string) string {
	if vc.LeftDN != "" && vc.LeftDN == dn {
		return "Released"
	}
	caller := placedBy(vc, dn)
	switch vc.State {
	case "dialing":
		if caller {
			return "Dialing"
		}
	case "ringing":
		if caller {
			return "Dialing"
		}
		return "Ringing"
	case "connected":
		return "Established"
	case "held":
		return "Held"
	case "ended":
		return "Released"
	}
	return ""
}

// placedBy reports whether the agent at dn placed the call: an internal
// call from it (the agent it rings is another DN), or an outbound call it
// dialled to a number (the call's agent is the caller itself).
func placedBy(vc VoiceCall, dn string) bool {
	return vc.From == dn && (vc.AgentDN != dn || vc.Kind == "outbound")
}

var callCapabilities = map[string][]string{
	"Dialing": {"release"}, "Ringing": {"answer", "release"}, "Established": {"release", "hold"},
	"Held": {"retrieve", "release"}, "Released": {},
}

// callObject is a call as CallStateChanged carries it (fields of
// workspace-client-js's Call model, roles as the simulator sets them). A
// callback is Inbound for the agent: Voice dials the customer first.
func callObject(vc VoiceCall, dn, state string) map[string]any {
	kind := map[string]string{"internal": "Internal", "inbound": "Inbound", "callback": "Inbound", "outbound": "Outbound"}[vc.Kind]
	other, role := vc.From, "RoleOrigination"
	if placedBy(vc, dn) {
		other, role = vc.To, "RoleDestination"
	}
	ud := []map[string]any{}
	keys := make([]string, 0, len(vc.UserData))
	for k := range vc.UserData {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ud = append(ud, map[string]any{"key": k, "type": "str", "value": vc.UserData[k]})
	}
	return map[string]any{"type": "Call", "id": vc.ID, "connId": vc.ID, "callUuid": vc.ID, "callType": kind, "state": state,
		"phoneNumber": dn, "ani": vc.From, "dnis": vc.To, "participants": []map[string]any{{"number": other, "role": role}},
		"capabilities": callCapabilities[state], "userData": ud, "extensions": []any{}}
}
