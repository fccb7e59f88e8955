package gauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

const (
	sessionCookie = "GAUTH_SESSION"
	csrfCookie    = "GAUTH_CSRF"
)

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CX Lab - Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;background:#f3f4f6;display:flex;justify-content:center;padding-top:10vh}
form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:18rem}
label{display:block;margin:.6rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;width:100%;padding:.5rem}.err{color:#b91c1c}.note{color:#6b7280;font-size:.8rem}</style></head>
<body><form method="post" action="{{.Action}}">
<h1>Sign in</h1>
<p class="note">{{.ClientName}} asks you to sign in (GAuth emulator).</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username (tenant\username or username)</label>
<input id="username" name="username" autocomplete="username" value="{{.Username}}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
<p class="note">Demo credentials are public: not for production.</p>
</form></body></html>`))

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CX Lab - Sign-in error</title></head>
<body><h1>Sign-in error</h1><p><code>{{.Code}}</code>: {{.Desc}}</p></body></html>`))

// authzRequest is a validated authorization request.
type authzRequest struct {
	client       tenant.Client
	responseType string
	redirectURI  string // where to send the browser
	givenURI     string // redirect_uri as sent ("" if omitted), bound to the code
	state        string
	scope        string
	nonce        string
	challenge    string
	method       string
}

// authorize serves GET (show the login page, or complete at once for a signed-in
// browser) and POST (the login form) of /auth/v3/oauth/authorize.
func (s *Server) authorize(c echo.Context) error {
	r := c.Request()
	q := r.URL.Query()
	ar, fatal, redirectErr := s.parseAuthz(r.Context(), q)
	if fatal != nil {
		s.metrics.errors.WithLabelValues(fatal.code).Inc()
		return renderHTML(c, fatal.status, errorPage, map[string]string{"Code": fatal.code, "Desc": fatal.desc})
	}
	if redirectErr != nil {
		return s.redirectError(c, ar, redirectErr)
	}
	ctx := r.Context()
	if r.Method == http.MethodPost {
		return s.authorizeLogin(c, ar)
	}
	if login, password, ok := r.BasicAuth(); ok {
		// The user's credentials in the request (as a script or a native
		// client sends them) stand for the form: 302 to the redirect.
		return s.loginAndComplete(c, ar, login, password)
	}
	// prompt=login (OIDC) asks for the password even in a signed-in browser.
	if u, sid, ok := s.currentSession(ctx, r); ok && q.Get("prompt") != "login" {
		return s.completeAuthz(c, ar, u, sid)
	}
	return s.showLogin(c, ar, http.StatusOK, "", "")
}

// parseAuthz validates the request. fatal errors (unknown client, bad
// redirect_uri) must not redirect; the rest are sent to the client's redirect.
func (s *Server) parseAuthz(ctx context.Context, q url.Values) (authzRequest, *oauthError, *oauthError) {
	for k, v := range q {
		if len(v) > 1 {
			return authzRequest{}, errInvalidRequest("parameter %s is repeated", k), nil
		}
	}
	ar := authzRequest{responseType: q.Get("response_type"), givenURI: q.Get("redirect_uri"), state: q.Get("state"),
		scope: q.Get("scope"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method")}
	id := q.Get("client_id")
	if id == "" {
		return ar, errInvalidRequest("missing client_id"), nil
	}
	client, err := s.tenants.Client(ctx, id)
	if err != nil {
		return ar, &oauthError{status: http.StatusBadRequest, code: "invalid_client", desc: "unknown client " + id}, nil
	}
	ar.client = client
	switch {
	case ar.givenURI != "":
		if !redirectAllowed(client.RedirectURIs, ar.givenURI) {
			return ar, errInvalidRequest("redirect_uri is not registered for client %s", id), nil
		}
		ar.redirectURI = ar.givenURI
	default:
		var abs []string
		for _, u := range client.RedirectURIs {
			if !strings.HasPrefix(u, "/") && !strings.HasSuffix(u, "*") {
				abs = append(abs, u)
			}
		}
		if len(abs) != 1 {
			return ar, errInvalidRequest("redirect_uri is required for client %s", id), nil
		}
		ar.redirectURI = abs[0]
	}
	if ar.scope == "" {
		ar.scope = "*"
	}
	switch ar.responseType {
	case "code":
		if !client.AllowsGrant(GrantAuthorizationCode) {
			return ar, nil, &oauthError{code: "unauthorized_client", desc: "client may not use the authorization code grant"}
		}
		switch ar.method {
		case "", "plain", "S256":
		default:
			return ar, nil, &oauthError{code: "invalid_request", desc: "code_challenge_method must be plain or S256"}
		}
		if ar.method != "" && ar.challenge == "" {
			return ar, nil, &oauthError{code: "invalid_request", desc: "code_challenge_method without code_challenge"}
		}
		if ar.challenge != "" && (len(ar.challenge) < 43 || len(ar.challenge) > 128) {
			return ar, nil, &oauthError{code: "invalid_request", desc: "code_challenge must have 43 to 128 characters"}
		}
		if ar.challenge != "" && ar.method == "" {
			ar.method = "plain"
		}
	case "token":
		if !client.AllowsGrant(GrantImplicit) {
			return ar, nil, &oauthError{code: "unauthorized_client", desc: "client may not use the implicit grant"}
		}
	case "":
		return ar, nil, &oauthError{code: "invalid_request", desc: "missing response_type"}
	default:
		return ar, nil, &oauthError{code: "unsupported_response_type", desc: "response_type must be code or token"}
	}
	return ar, nil, nil
}

// redirectAllowed applies the contract's redirect rule: an absolute entry
// matches exactly (or as a prefix when it ends in "*"); a path entry ("/x",
// "/x/*") matches that path on any loopback origin, http or https, any port,
// because the appliance picks its port at start.
func redirectAllowed(registered []string, given string) bool {
	u, err := url.Parse(given)
	if err != nil || !u.IsAbs() || u.Fragment != "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	for _, entry := range registered {
		prefix, wild := strings.CutSuffix(entry, "*")
		if strings.HasPrefix(entry, "/") {
			if !isLoopbackHost(u.Hostname()) {
				continue
			}
			p := u.EscapedPath()
			if p == entry || (wild && strings.HasPrefix(p, prefix)) {
				return true
			}
			continue
		}
		if given == entry || (wild && strings.HasPrefix(given, prefix)) {
			return true
		}
	}
	return false
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) redirectError(c echo.Context, ar authzRequest, e *oauthError) error {
	s.metrics.errors.WithLabelValues(e.code).Inc()
	v := url.Values{"error": {e.code}, "error_description": {e.desc}}
	if ar.state != "" {
		v.Set("state", ar.state)
	}
	return c.Redirect(http.StatusFound, appendParams(ar.redirectURI, v, ar.responseType == "token"))
}

func appendParams(base string, v url.Values, fragment bool) string {
	if fragment {
		return base + "#" + v.Encode()
	}
	if strings.Contains(base, "?") {
		return base + "&" + v.Encode()
	}
	return base + "?" + v.Encode()
}

func (s *Server) showLogin(c echo.Context, ar authzRequest, code int, username, msg string) error {
	csrf := randomToken()
	c.SetCookie(&http.Cookie{Name: csrfCookie, Value: csrf, Path: "/auth/v3", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https"})
	name := ar.client.Name
	if name == "" {
		name = ar.client.ID
	}
	action := "/auth/v3/oauth/authorize?" + c.Request().URL.RawQuery
	return renderHTML(c, code, loginPage, map[string]any{"Action": action, "CSRF": csrf, "ClientName": name, "Username": username, "Error": msg})
}

func renderHTML(c echo.Context, code int, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("render %s: %w", t.Name(), err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("X-Frame-Options", "DENY")
	return c.HTML(code, b.String())
}

// authorizeLogin handles the posted login form.
func (s *Server) authorizeLogin(c echo.Context, ar authzRequest) error {
	r := c.Request()
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return renderHTML(c, http.StatusRequestEntityTooLarge, errorPage, map[string]string{"Code": "invalid_request", "Desc": "form too large"})
		}
		return renderHTML(c, http.StatusBadRequest, errorPage, map[string]string{"Code": "invalid_request", "Desc": "malformed form"})
	}
	login, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	ck, err := r.Cookie(csrfCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		return s.showLogin(c, ar, http.StatusBadRequest, login, "Your sign-in form expired; please try again.")
	}
	return s.loginAndComplete(c, ar, login, password)
}

// loginAndComplete signs the user in and completes the authorization; wrong
// credentials show the sign-in page again (401).
func (s *Server) loginAndComplete(c echo.Context, ar authzRequest, login, password string) error {
	u, err := s.loginUser(c.Request().Context(), login, password, ar.client.CCID)
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			s.metrics.errors.WithLabelValues("login_failed").Inc()
			return s.showLogin(c, ar, http.StatusUnauthorized, login, "Wrong username or password.")
		}
		return fmt.Errorf("login: %w", err)
	}
	sid, err := s.createSession(c, u)
	if err != nil {
		return err
	}
	return s.completeAuthz(c, ar, u, sid)
}

// createSession records a login session and sets its cookie.
func (s *Server) createSession(c echo.Context, u tenant.User) (uuid.UUID, error) {
	secret := randomToken()
	sid := uuid.New()
	now := s.clk.Now()
	if _, err := s.pool.Exec(c.Request().Context(), `INSERT INTO gauth.login_sessions (id, secret_hash, user_dbid, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)`, sid, hashToken(secret), int64(u.DBID), now, now.Add(s.cfg.LoginSessionTTL)); err != nil {
		return uuid.Nil, fmt.Errorf("create login session: %w", err)
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: secret, Path: "/auth/v3", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https", MaxAge: int(s.cfg.LoginSessionTTL / time.Second)})
	return sid, nil
}

// currentSession returns the signed-in person of the browser, if any.
func (s *Server) currentSession(ctx context.Context, r *http.Request) (tenant.User, uuid.UUID, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return tenant.User{}, uuid.Nil, false
	}
	var sid uuid.UUID
	var dbid int64
	err = s.pool.QueryRow(ctx, `SELECT id, user_dbid FROM gauth.login_sessions
WHERE secret_hash = $1 AND revoked_at IS NULL AND expires_at > $2`, hashToken(ck.Value), s.clk.Now()).Scan(&sid, &dbid)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			s.log.Error("read login session", "err", err)
		}
		return tenant.User{}, uuid.Nil, false
	}
	u, err := s.tenants.UserByDBID(ctx, tenant.DBID(dbid))
	if err != nil || !u.Enabled {
		return tenant.User{}, uuid.Nil, false
	}
	return u, sid, true
}

// completeAuthz sends the browser back with a code or (implicit) a token.
func (s *Server) completeAuthz(c echo.Context, ar authzRequest, u tenant.User, sid uuid.UUID) error {
	ctx := c.Request().Context()
	if ar.client.CCID != "" && u.CCID != ar.client.CCID {
		return s.redirectError(c, ar, &oauthError{code: "access_denied", desc: "user belongs to another contact center than the client"})
	}
	v := url.Values{}
	if ar.state != "" {
		v.Set("state", ar.state)
	}
	if ar.responseType == "token" {
		resp, err := s.issue(ctx, issueReq{client: ar.client, user: &u, grant: GrantImplicit, scope: ar.scope, sessionID: sid})
		if err != nil {
			return err
		}
		v.Set("access_token", resp.AccessToken)
		v.Set("token_type", resp.TokenType)
		v.Set("expires_in", fmt.Sprint(resp.ExpiresIn))
		v.Set("scope", resp.Scope)
		return c.Redirect(http.StatusFound, appendParams(ar.redirectURI, v, true))
	}
	code := randomToken()
	_, err := s.pool.Exec(ctx, `INSERT INTO gauth.auth_codes (code_hash, client_id, redirect_uri, user_dbid, session_id, scope, nonce, challenge, challenge_method, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, hashToken(code), ar.client.ID, ar.givenURI, int64(u.DBID), sid, ar.scope, ar.nonce,
		ar.challenge, ar.method, s.clk.Now().Add(s.cfg.CodeTTL))
	if err != nil {
		return fmt.Errorf("store authorization code: %w", err)
	}
	v.Set("code", code)
	return c.Redirect(http.StatusFound, appendParams(ar.redirectURI, v, false))
}

// signIn is POST /auth/v3/sign-in (form username, password): it opens a login
// session for the browser; with redirectUri it redirects there (a path on
// this server only), otherwise it answers the envelope. redirectUri is checked
// before anything happens, so a refused one sets no cookie.
func (s *Server) signIn(c echo.Context) error {
	r := c.Request()
	if err := r.ParseForm(); err != nil {
		return envelope(c, http.StatusBadRequest, "malformed form", nil)
	}
	to := r.PostForm.Get("redirectUri")
	if to != "" && !safeLocalRedirect(to) {
		return envelope(c, http.StatusBadRequest, badRedirectURI, nil)
	}
	login, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if login == "" || password == "" {
		return envelope(c, http.StatusBadRequest, "username and password are required", nil)
	}
	u, err := s.loginUser(r.Context(), login, password, "")
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			return envelope(c, http.StatusUnauthorized, "bad credentials", nil)
		}
		return fmt.Errorf("sign-in: %w", err)
	}
	if _, err := s.createSession(c, u); err != nil {
		return err
	}
	if to != "" {
		return c.Redirect(http.StatusFound, to)
	}
	return ok(c, map[string]any{"userName": u.UserName, "contactCenterId": u.CCID})
}

const badRedirectURI = "redirectUri must be a path on this server (like /console/) or a loopback URL (like http://localhost:3000/)"

// safeLocalRedirect reports whether sign-in or sign-out may redirect to to:
// a path on this server, or an http(s) URL on this machine (an app under
// development on localhost:3000, say), and nothing a browser could read as
// another host. Browsers drop tabs and newlines from URLs and read "\" as
// "/", so "/<tab>/evil.example" and "/\evil.example" both become
// "//evil.example"; hence no control characters, whitespace or backslashes
// at all, and what is left must parse as a bare path starting with exactly
// one "/", or as an absolute URL whose host is loopback.
func safeLocalRedirect(to string) bool {
	if !utf8.ValidString(to) {
		return false
	}
	for _, r := range to {
		if r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	u, err := url.Parse(to)
	if err != nil || u.User != nil || u.Opaque != "" {
		return false
	}
	if u.Scheme != "" || u.Host != "" {
		return (u.Scheme == "http" || u.Scheme == "https") && isLoopbackHost(u.Hostname())
	}
	return strings.HasPrefix(to, "/") && !strings.HasPrefix(to, "//") &&
		strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}
