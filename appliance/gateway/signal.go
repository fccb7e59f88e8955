package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/appliance/gateway/internal/rtc"
	"github.com/cxlab/cxlab/appliance/httpd"
)

// Mount registers the Grtc endpoints under BasePath on the appliance's echo server.
func (s *Server) Mount(e *echo.Echo) {
	b := s.cfg.BasePath
	e.GET(b+"/sign_in", s.handleSignIn)
	e.POST(b+"/sign_in", s.handleSignIn)
	e.GET(b+"/wait", s.handleWait)
	e.POST(b+"/message", s.handleMessage)
	e.GET(b+"/sign_out", s.handleSignOut)
	e.POST(b+"/sign_out", s.handleSignOut)
	e.GET(b+"/ice-servers", s.handleICEServers)
	e.GET(b+"/config", s.handleConfig)
	// A wrong method or path gets a Grtc error body too, not echo's JSON.
	httpd.Unmatched(e, b, func(c echo.Context, status int, msg string) error {
		if c.Request().URL.Path == b+"/message" && status == http.StatusMethodNotAllowed {
			msg = "message takes POST with the text as its body"
		}
		return textError(c, status, "BAD_REQUEST", msg)
	})
}

// stickyCookie is what the real deployment's ingress-nginx sets (seed 000).
const stickyCookie = "INGRESSCOOKIE"

// pushedError is a gateway error sent through /wait during a call: a ROAP
// ERROR message after "SDP ", as the JS library expects it. Its
// handlePeerMessage takes a message for a gateway error (onGatewayError)
// only when "ERROR" stands after the start (msg.search("ERROR") > 0) and
// the text holds "errorType" and "{"; an "ERROR {...}" body fails that test
// and reaches the application as an unexpected message.
func pushedError(errType, msg string) string {
	b, _ := json.Marshal(map[string]string{"messageType": "ERROR", "errorType": errType, "message": msg}) // strings always marshal
	return "SDP " + string(b)
}

// errorBody renders the Grtc error text of an HTTP error answer ("ERROR" +
// {"errorType": ...}); the library reads those from the failed request.
func errorBody(errType, msg string) string {
	b, _ := json.Marshal(map[string]string{"errorType": errType, "message": msg}) // strings always marshal
	return "ERROR " + string(b)
}

// textError answers a signalling request with status and a Grtc error body.
func textError(c echo.Context, status int, errType, msg string) error {
	return c.String(status, errorBody(errType, msg))
}

// readBody reads at most MaxBodyBytes; ok is false (and 413 sent) beyond it.
func (s *Server) readBody(c echo.Context) (string, bool, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return "", false, textError(c, http.StatusBadRequest, "BAD_REQUEST", "cannot read body")
	}
	if int64(len(b)) > s.cfg.MaxBodyBytes {
		return "", false, textError(c, http.StatusRequestEntityTooLarge, "TOO_LARGE",
			fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodyBytes))
	}
	return string(b), true, nil
}

// validDN reports whether a legacy sign-in id can be a SIP URI user part as
// it is (RFC 3261: alphanumerics, the marks -_.!~*'() and +$,), so that Voice
// can parse the REGISTER. A character outside that set ('[' say) made the
// REGISTER unreadable and the sign-in wait 5 s for an answer that never came.
func validDN(dn string) bool {
	if dn == "" || len(dn) > 128 {
		return false
	}
	for _, r := range dn {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.!~*'()+$,", r)
		if !ok {
			return false
		}
	}
	return true
}

// handleSignIn implements the four sign-in forms: Bearer token (modern),
// POST "<dn>:<password>" (SIP digest), GET ?<dn> (unauthenticated REGISTER)
// and GET ?anon<random> (anonymous caller, nothing registered).
func (s *Server) handleSignIn(c echo.Context) error {
	ctx := c.Request().Context()
	ss := newSession(SSID(newID(12)), s.clk.Now())
	authz := c.Request().Header.Get("Authorization")
	switch {
	case len(authz) > 7 && strings.EqualFold(authz[:7], "bearer "):
		token := strings.TrimSpace(authz[7:])
		id, err := s.resolveAgent(ctx, token)
		switch {
		case errors.Is(err, ErrUnauthorized):
			return textError(c, http.StatusUnauthorized, "AUTH", "token refused by the authentication service")
		case errors.Is(err, ErrNoDN):
			return textError(c, http.StatusForbidden, "NO_DN", "the user has no DN")
		case err != nil:
			s.log.Warn("sign-in: platform lookup failed", "err", err)
			down := dependencyNames["cfg"]
			if errors.Is(err, errAuthDown) {
				down = dependencyNames["auth"]
			}
			return textError(c, http.StatusServiceUnavailable, "UNAVAILABLE", "the "+down+" is unavailable; sign in again when it is back")
		}
		ss.user, ss.ccid, ss.dn, ss.domain, ss.token = id.user, id.ccid, id.dn, id.domain, token
	default:
		var raw string
		if c.Request().Method == http.MethodPost {
			body, ok, err := s.readBody(c)
			if !ok {
				return err
			}
			raw = strings.TrimSpace(body)
		} else {
			raw = c.QueryString()
		}
		dn, pw, _ := strings.Cut(raw, ":")
		if !validDN(dn) {
			return textError(c, http.StatusBadRequest, "BAD_REQUEST", "sign_in needs a DN, a DN:password body or a Bearer token")
		}
		if !utf8.ValidString(pw) || strings.ContainsFunc(pw, unicode.IsControl) {
			return textError(c, http.StatusBadRequest, "BAD_REQUEST", "the password holds a control character or bytes that are not UTF-8")
		}
		ss.user, ss.dn, ss.domain, ss.password = dn, DN(dn), s.cfg.LegacyDomain, pw
		// The JS library's anonymous sign-in (GET sign_in?anon<random>): a
		// web caller who registers no DN and can only place calls, to a
		// virtual queue say.
		ss.anonymous = c.Request().Method == http.MethodGet && pw == "" && strings.HasPrefix(dn, "anon")
	}
	if err := s.sip.register(ctx, ss, s.cfg.RegisterExpiry); err != nil {
		s.log.Info("sign-in: REGISTER refused", "dn", ss.dn, "err", err)
		if errors.Is(err, ErrUnauthorized) {
			return textError(c, http.StatusUnauthorized, "AUTH", "Voice refused the registration")
		}
		if errors.Is(err, ErrUnknownDN) {
			return textError(c, http.StatusNotFound, "REGISTER", fmt.Sprintf("DN %s is not configured in Voice", ss.dn))
		}
		return textError(c, http.StatusServiceUnavailable, "REGISTER", err.Error())
	}
	ss.registered = time.Now()
	if _, err := s.addSession(ctx, ss); err != nil {
		ctx2, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		_ = s.sip.register(ctx2, ss, 0)
		cancel()
		return textError(c, http.StatusServiceUnavailable, "CAPACITY", err.Error())
	}
	if ck, err := c.Cookie(stickyCookie); err != nil || ck.Value == "" {
		c.SetCookie(&http.Cookie{Name: stickyCookie, Value: newID(16), Path: "/", Secure: true,
			HttpOnly: true, SameSite: http.SameSiteNoneMode})
	}
	s.log.Info("signed in", "dn", ss.dn, "user", ss.user, "domain", ss.domain)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.String(http.StatusOK, fmt.Sprintf("%s=%s\n", ss.dn, ss.id))
}

// handleWait is the hanging GET; the Pragma header names the peer.
func (s *Server) handleWait(c echo.Context) error {
	ss := s.session(SSID(c.QueryParam("id")))
	if ss == nil {
		return textError(c, http.StatusNotFound, "UNKNOWN_SESSION", "not signed in")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	m, ok := ss.wait(c.Request().Context(), s.cfg.WaitTimeout)
	if !ok {
		if s.session(ss.id) == nil {
			return textError(c, http.StatusNotFound, "UNKNOWN_SESSION", "signed out")
		}
		// Nothing to say within the hold: 200 with an empty body. The JS
		// library signs out on any status but 200, and re-polls on its own
		// timeout (polling_timeout, 30 s by default, shorter than the hold).
		return c.String(http.StatusOK, "")
	}
	if c.Request().Context().Err() != nil {
		ss.unshift(m) // the client went away as the message was taken
		return nil
	}
	c.Response().Header().Set("Pragma", m.peer)
	if err := c.String(http.StatusOK, m.body); err != nil {
		ss.unshift(m)
		return err
	}
	if err := http.NewResponseController(c.Response().Unwrap()).Flush(); err != nil {
		ss.unshift(m)
		return fmt.Errorf("wait: deliver message: %w", err)
	}
	return nil
}

// handleSignOut ends the client's session.
func (s *Server) handleSignOut(c echo.Context) error {
	ss := s.session(SSID(c.QueryParam("id")))
	if ss == nil {
		return textError(c, http.StatusNotFound, "UNKNOWN_SESSION", "not signed in")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
	defer cancel()
	s.signOut(ctx, ss, "sign_out")
	return c.String(http.StatusOK, "")
}

// rawQueryParam is the first value of key in a raw query, percent-decoded
// but with '+' kept: the JS library builds "&to=" + peer without encoding
// it, so a number to dial arrives as "to=+12025550100", which form decoding
// would turn into " 12025550100".
func rawQueryParam(raw, key string) string {
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
		return v
	}
	return ""
}

// handleMessage takes one client message (RSMP, BYE, INFO-*, GET-STATS).
func (s *Server) handleMessage(c echo.Context) error {
	ss := s.session(SSID(c.QueryParam("from")))
	if ss == nil {
		return textError(c, http.StatusNotFound, "UNKNOWN_SESSION", "not signed in")
	}
	body, ok, err := s.readBody(c)
	if !ok {
		return err
	}
	to := rawQueryParam(c.Request().URL.RawQuery, "to")
	if to == "self" {
		to = string(ss.id)
	}
	status, errType, msg := s.dispatch(ss, to, body)
	if status != http.StatusOK {
		s.log.Debug("message refused", "dn", ss.dn, "type", errType, "msg", msg)
		return textError(c, status, errType, msg)
	}
	return c.String(http.StatusOK, "")
}

// dispatch routes a client message; it returns 200 or an error status.
func (s *Server) dispatch(ss *session, to, body string) (int, string, string) {
	verb := body
	if i := strings.IndexAny(body, " \r\n{"); i >= 0 {
		verb = body[:i]
	}
	cur := ss.currentCall()
	switch strings.ToUpper(verb) {
	case "RSMP", "SDP":
		m, err := rtc.ParseMessage(body)
		if err != nil {
			return http.StatusBadRequest, "BAD_MESSAGE", err.Error()
		}
		switch m.Type {
		case "OK":
			return http.StatusOK, "", ""
		case "ANSWER":
			if cur == nil || !cur.deliverAnswer(m) {
				return http.StatusConflict, "NO_OFFER", "no offer is waiting for an answer"
			}
			return http.StatusOK, "", ""
		default: // OFFER
			names, _, hasAudio := rtc.CodecsInSDP(m.FullSDP())
			if !hasAudio {
				return http.StatusBadRequest, "NO_AUDIO", "offer has no audio section"
			}
			if _, err := s.pickBrowserCodec(names); err != nil {
				return http.StatusNotAcceptable, "CODEC", err.Error()
			}
			if cur != nil {
				go cur.reoffer(m)
				return http.StatusOK, "", ""
			}
			if to == "" || to == string(ss.id) || !isDialable(to) {
				return http.StatusBadRequest, "BAD_PEER", "an outgoing call needs a number to dial"
			}
			c := newCall(s, ss, "outbound", to)
			if !ss.claimCall(c) {
				return http.StatusConflict, "BUSY", "a call is already in progress"
			}
			go c.runOutgoing(m)
			return http.StatusOK, "", ""
		}
	case "BYE":
		if cur != nil {
			go cur.end(context.Background(), "browser bye", sideBrowser)
		}
		return http.StatusOK, "", ""
	case "INFO-MAP", "INFO-PEER":
		if cur == nil {
			return http.StatusConflict, "NO_CALL", "no call in progress"
		}
		ct := "application/x-www-form-urlencoded"
		if strings.EqualFold(verb, "INFO-PEER") {
			ct = "application/octet-stream"
		}
		go cur.sendInfo(ct, strings.TrimSpace(body[len(verb):]))
		return http.StatusOK, "", ""
	case "GET-STATS":
		if cur == nil {
			return http.StatusConflict, "NO_CALL", "no call in progress"
		}
		b, _ := json.Marshal(cur.info()) // plain struct
		ss.push(cur.peer, "PUT-STATS "+string(b))
		return http.StatusOK, "", ""
	}
	return http.StatusBadRequest, "UNKNOWN_MESSAGE", "unknown message " + truncate(verb, 32)
}

// isDialable accepts E.164 numbers, DNs and SIP user parts.
func isDialable(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		if (r < '0' || r > '9') && (r != '+' || i != 0) && r != '*' && r != '#' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// handleICEServers returns RTCIceServer JSON with fresh TURN credentials (lab addition).
func (s *Server) handleICEServers(c echo.Context) error {
	ss := s.session(SSID(c.QueryParam("id")))
	if ss == nil {
		return textError(c, http.StatusNotFound, "UNKNOWN_SESSION", "not signed in")
	}
	return c.JSON(http.StatusOK, s.iceServers(ss.user))
}

// iceServers converts the TURN server's list (empty without TURN).
func (s *Server) iceServers(user string) []map[string]any {
	out := []map[string]any{}
	if s.turn == nil {
		return out
	}
	for _, is := range s.turn.ICEServers(user) {
		out = append(out, map[string]any{"urls": is.URLs, "username": is.Username, "credential": is.Credential})
	}
	return out
}

// clientPollTimeout is the polling_timeout a page should give the JS
// library: shorter than the gateway's hold, so that the library's own
// timeout ends a quiet poll (it re-polls without a word) before the hold's
// empty 200 does (which it would hand on as a message): its default of
// 30 s, or 5 s under a shorter hold.
func clientPollTimeout(hold time.Duration) time.Duration {
	return max(min(30*time.Second, hold-5*time.Second), time.Second)
}

// handleConfig tells a page where to sign in and what the gateway supports (lab addition).
func (s *Server) handleConfig(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"webrtc_gateway":     s.cfg.BasePath,
		"polling_timeout":    clientPollTimeout(s.cfg.WaitTimeout).Milliseconds(),
		"noanswer_timeout":   s.cfg.AnswerTimeout.Milliseconds(),
		"enableTranscoding":  *s.cfg.EnableTranscoding,
		"iceServersEndpoint": s.cfg.BasePath + "/ice-servers",
		"turn":               s.turn != nil,
	})
}
