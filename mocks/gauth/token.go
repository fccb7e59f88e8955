package gauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

var knownGrants = map[string]bool{
	GrantAuthorizationCode: true, GrantClientCredentials: true, GrantPassword: true,
	GrantRefreshToken: true, GrantJWTBearer: true, GrantTokenExchange: true,
}

// token is POST /auth/v3/oauth/token.
func (s *Server) token(c echo.Context) error {
	if oerr := checkFormType(c.Request()); oerr != nil {
		return s.writeOAuthError(c, oerr)
	}
	form, oerr := parseForm(c.Request())
	if oerr != nil {
		return s.writeOAuthError(c, oerr)
	}
	ctx := c.Request().Context()
	client, oerr := s.authenticateClient(ctx, c.Request(), form)
	if oerr != nil {
		return s.writeOAuthError(c, oerr)
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return s.writeOAuthError(c, errInvalidRequest("missing grant_type"))
	}
	if !knownGrants[grant] {
		return s.writeOAuthError(c, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "grant type " + grant + " is not supported"})
	}
	if !client.AllowsGrant(grant) {
		return s.writeOAuthError(c, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client",
			desc: fmt.Sprintf("client %s may not use grant type %s", client.ID, grant)})
	}
	var resp tokenResponse
	var err error
	switch grant {
	case GrantClientCredentials:
		resp, err = s.issue(ctx, issueReq{client: client, grant: grant, scope: form.Get("scope")})
	case GrantPassword:
		resp, err = s.grantPassword(ctx, client, form)
	case GrantAuthorizationCode:
		resp, err = s.grantCode(ctx, client, form)
	case GrantRefreshToken:
		resp, err = s.grantRefresh(ctx, client, form)
	case GrantJWTBearer:
		resp, err = s.grantJWTBearer(ctx, client, form)
	case GrantTokenExchange:
		resp, err = s.grantTokenExchange(ctx, client, form)
	}
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			return s.writeOAuthError(c, oe)
		}
		s.log.Error("token endpoint", "grant", grant, "client", client.ID, "err", err)
		return s.writeOAuthError(c, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "internal error"})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(http.StatusOK, resp)
}

// checkFormType refuses a body that is not application/x-www-form-urlencoded
// (RFC 6749 §4.1.3 and siblings): net/http would silently ignore, say, a JSON
// body, and the client would be told "missing grant_type". A request without
// a body and without a content type goes on to report what is missing.
func checkFormType(r *http.Request) *oauthError {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/x-www-form-urlencoded" {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return errInvalidRequest("the body must have content type application/x-www-form-urlencoded, not %s", strings.ToValidUTF8(ct, "?"))
}

// parseForm reads an x-www-form-urlencoded body (size-limited by limitBody);
// repeated parameters are refused as RFC 6749 §3.2 demands.
func parseForm(r *http.Request) (url.Values, *oauthError) {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &oauthError{status: http.StatusRequestEntityTooLarge, code: "invalid_request",
				desc: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return nil, errInvalidRequest("malformed form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errInvalidRequest("parameter %s is repeated", k)
		}
		if !validText(k) || !validText(v[0]) {
			return nil, errInvalidRequest("parameter %q is not UTF-8 text", strings.ToValidUTF8(k, "?"))
		}
	}
	return r.PostForm, nil
}

// validText reports whether s can be a parameter value: UTF-8 without NUL
// (RFC 6749 appendix A draws every parameter from Unicode characters, and
// PostgreSQL text holds neither invalid bytes nor NUL).
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// authenticateClient checks HTTP Basic or client_id/client_secret form
// credentials (never both).
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (tenant.Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = form.Get("client_id"), form.Get("client_secret")
		if id == "" {
			return tenant.Client{}, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "client authentication required", basic: true}
		}
		if client, found := s.checkClient(ctx, id, secret); found {
			return client, nil
		}
		return tenant.Client{}, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "unknown client or wrong secret"}
	}
	// RFC 6749 §2.3.1 form-urlencodes id and secret before Basic encoding, but
	// Genesys' own samples (and most clients) send them raw, so a secret with
	// "+" or "%" would fail one way or the other. Try the decoded pair, then
	// the raw one when it differs.
	type pair struct{ id, secret string }
	var pairs []pair
	did, err1 := url.QueryUnescape(id)
	dsecret, err2 := url.QueryUnescape(secret)
	if err1 == nil && err2 == nil && validText(did) && validText(dsecret) {
		pairs = append(pairs, pair{did, dsecret})
	}
	if raw := (pair{id, secret}); validText(id) && validText(secret) && !slices.Contains(pairs, raw) {
		pairs = append(pairs, raw)
	}
	if len(pairs) == 0 {
		return tenant.Client{}, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "malformed Basic credentials", basic: true}
	}
	if form.Get("client_secret") != "" {
		return tenant.Client{}, errInvalidRequest("use one client authentication method, not two")
	}
	fid := form.Get("client_id")
	if fid != "" && !slices.ContainsFunc(pairs, func(p pair) bool { return p.id == fid }) {
		return tenant.Client{}, errInvalidRequest("client_id differs from the Basic credentials")
	}
	for _, p := range pairs {
		if fid != "" && p.id != fid {
			continue
		}
		if client, found := s.checkClient(ctx, p.id, p.secret); found {
			return client, nil
		}
	}
	return tenant.Client{}, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "unknown client or wrong secret", basic: true}
}

// checkClient reports whether id names a client whose secret is secret.
func (s *Server) checkClient(ctx context.Context, id, secret string) (tenant.Client, bool) {
	client, err := s.tenants.Client(ctx, id)
	if err != nil {
		if !errors.Is(err, tenant.ErrNotFound) {
			s.log.Error("client lookup", "client", id, "err", err)
		}
		return tenant.Client{}, false
	}
	return client, tenant.CheckSecret(client.SecretHash, secret)
}

// findUsers resolves a login name: "tenant\user" names one person; a plain user
// name names every person of that name (only those of the client's tenant when
// the client is bound).
func (s *Server) findUsers(ctx context.Context, login string, bound tenant.CCID) ([]tenant.User, error) {
	one := func(u tenant.User, err error) ([]tenant.User, error) {
		if errors.Is(err, tenant.ErrNotFound) || errors.Is(err, tenant.ErrInvalid) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []tenant.User{u}, nil
	}
	if tn, name, ok := strings.Cut(login, `\`); ok {
		cc, err := s.tenants.ContactCenterByName(ctx, tn)
		if err != nil || (bound != "" && cc.ID != bound) {
			return one(tenant.User{}, tenant.ErrNotFound)
		}
		return one(s.tenants.User(ctx, cc.ID, name))
	}
	if bound != "" {
		return one(s.tenants.User(ctx, bound, login))
	}
	return s.tenants.UsersNamed(ctx, login)
}

// findUser resolves a login name that must name exactly one person.
func (s *Server) findUser(ctx context.Context, login string, bound tenant.CCID) (tenant.User, error) {
	users, err := s.findUsers(ctx, login, bound)
	if err != nil {
		return tenant.User{}, err
	}
	if len(users) != 1 {
		return tenant.User{}, tenant.ErrNotFound
	}
	return users[0], nil
}

// loginUser checks a person's credentials. A plain user name held in several
// tenants signs in the one whose password matches (if exactly one does), so
// the demo logins keep working when another tenant reuses "agent1".
func (s *Server) loginUser(ctx context.Context, login, password string, bound tenant.CCID) (tenant.User, error) {
	users, err := s.findUsers(ctx, login, bound)
	if err != nil {
		return tenant.User{}, err
	}
	var match []tenant.User
	for _, u := range users {
		if u.Enabled && tenant.CheckSecret(u.PasswordHash, password) {
			match = append(match, u)
		}
	}
	if len(match) != 1 {
		return tenant.User{}, errInvalidGrant("bad credentials")
	}
	return match[0], nil
}

func (s *Server) grantPassword(ctx context.Context, client tenant.Client, form url.Values) (tokenResponse, error) {
	login, password := form.Get("username"), form.Get("password")
	if login == "" || password == "" {
		return tokenResponse{}, errInvalidRequest("username and password are required")
	}
	// GAuth also accepts the tenant in a separate form field.
	if tn := form.Get("tenant"); tn != "" && !strings.Contains(login, `\`) {
		login = tn + `\` + login
	}
	u, err := s.loginUser(ctx, login, password, client.CCID)
	if err != nil {
		return tokenResponse{}, err
	}
	scope := form.Get("scope")
	return s.issue(ctx, issueReq{client: client, user: &u, grant: GrantPassword, scope: scope,
		refresh: client.AllowsGrant(GrantRefreshToken), idToken: hasScope(scope, "openid")})
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

// activeUser re-reads a person so a deleted or disabled user gets no new tokens.
func (s *Server) activeUser(ctx context.Context, dbid int64) (tenant.User, error) {
	u, err := s.tenants.UserByDBID(ctx, tenant.DBID(dbid))
	if errors.Is(err, tenant.ErrNotFound) || (err == nil && !u.Enabled) {
		return tenant.User{}, errInvalidGrant("user no longer exists or is disabled")
	}
	return u, err
}

func (s *Server) grantCode(ctx context.Context, client tenant.Client, form url.Values) (tokenResponse, error) {
	code := form.Get("code")
	if code == "" {
		return tokenResponse{}, errInvalidRequest("missing code")
	}
	h := hashToken(code)
	now := s.clk.Now()
	var (
		clientID, redirectURI, scope, nonce, challenge, method string
		dbid                                                   int64
		sessionID                                              uuid.UUID
		expires                                                time.Time
		signedIn                                               bool
	)
	// signedIn: the browser's login session the code came from is still live;
	// a sign-out (of that session or global) between the redirect and the
	// redemption kills the code.
	err := s.pool.QueryRow(ctx, `UPDATE gauth.auth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
RETURNING client_id, redirect_uri, user_dbid, session_id, scope, nonce, challenge, challenge_method, expires_at,
  EXISTS (SELECT 1 FROM gauth.login_sessions l WHERE l.id = auth_codes.session_id AND l.revoked_at IS NULL)`, h, now).
		Scan(&clientID, &redirectURI, &dbid, &sessionID, &scope, &nonce, &challenge, &method, &expires, &signedIn)
	if errors.Is(err, pgx.ErrNoRows) {
		// A second use of a code revokes what the first use issued (RFC 6749 §4.1.2).
		tag, rerr := s.pool.Exec(ctx, `UPDATE gauth.tokens SET revoked_at = $2 WHERE code_hash = $1 AND revoked_at IS NULL`, h, now)
		if rerr != nil {
			return tokenResponse{}, fmt.Errorf("revoke tokens of reused code: %w", rerr)
		}
		if tag.RowsAffected() > 0 {
			s.log.Warn("authorization code reused; tokens revoked", "client", client.ID)
		}
		return tokenResponse{}, errInvalidGrant("authorization code is invalid or already used")
	}
	if err != nil {
		return tokenResponse{}, fmt.Errorf("redeem code: %w", err)
	}
	switch {
	case clientID != client.ID:
		return tokenResponse{}, errInvalidGrant("authorization code was issued to another client")
	case !now.Before(expires):
		return tokenResponse{}, errInvalidGrant("authorization code expired")
	case !signedIn:
		return tokenResponse{}, errInvalidGrant("the sign-in session of this authorization code was signed out")
	case redirectURI != "" && form.Get("redirect_uri") != redirectURI:
		return tokenResponse{}, errInvalidGrant("redirect_uri does not match the authorization request")
	}
	verifier := form.Get("code_verifier")
	if challenge == "" && verifier != "" {
		return tokenResponse{}, errInvalidGrant("code_verifier sent but the authorization request had no code_challenge")
	}
	if challenge != "" {
		if verifier == "" {
			return tokenResponse{}, errInvalidGrant("code_verifier required")
		}
		if !pkceMatches(method, challenge, verifier) {
			return tokenResponse{}, errInvalidGrant("PKCE verification failed")
		}
	}
	u, err := s.activeUser(ctx, dbid)
	if err != nil {
		return tokenResponse{}, err
	}
	return s.issue(ctx, issueReq{client: client, user: &u, grant: GrantAuthorizationCode, scope: scope, sessionID: sessionID,
		codeHash: h, refresh: client.AllowsGrant(GrantRefreshToken), idToken: hasScope(scope, "openid"), nonce: nonce})
}

func pkceMatches(method, challenge, verifier string) bool {
	var want string
	switch method {
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	case "plain", "":
		want = verifier
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// grantRefresh rotates a refresh token. Only a token really spent (rotated)
// counts as reuse; a refusal for any other reason (another client, expired,
// revoked, user gone) leaves it as it was.
//
// Reuse of a rotated token normally means it leaked, and revokes the whole
// session (OAuth 2.0 Security BCP, refresh token rotation). But two tabs of
// one browser refreshing at once would then sign everybody out, the winner
// included. So within Config.RefreshReuseGrace of the rotation a reuse gets a
// fresh token pair in the same session instead (as Auth0's "reuse interval"
// does): the earlier pair stays valid, sign-out still ends both, and a reuse
// after the grace still revokes the session. A fresh pair rather than the
// same one because only hashes of refresh tokens are stored.
func (s *Server) grantRefresh(ctx context.Context, client tenant.Client, form url.Values) (tokenResponse, error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return tokenResponse{}, errInvalidRequest("missing refresh_token")
	}
	h := hashToken(rt)
	// A concurrent refresh may rotate the token between the read and the
	// update; the second round then sees it rotated.
	for range 2 {
		var (
			clientID, scope  string
			dbid             *int64
			sessionID        uuid.UUID
			expires          time.Time
			rotated, revoked *time.Time
		)
		err := s.pool.QueryRow(ctx, `SELECT client_id, user_dbid, session_id, scope, expires_at, rotated_at, revoked_at
FROM gauth.tokens WHERE refresh_hash = $1 AND kind = 'refresh'`, h).Scan(&clientID, &dbid, &sessionID, &scope, &expires, &rotated, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return tokenResponse{}, errInvalidGrant("refresh token is invalid, revoked or already used")
		}
		if err != nil {
			return tokenResponse{}, fmt.Errorf("read refresh token: %w", err)
		}
		now := s.clk.Now()
		switch {
		case clientID != client.ID:
			return tokenResponse{}, errInvalidGrant("refresh token was issued to another client")
		case revoked != nil:
			return tokenResponse{}, errInvalidGrant("refresh token is invalid, revoked or already used")
		case !now.Before(expires):
			return tokenResponse{}, errInvalidGrant("refresh token expired")
		}
		req := issueReq{client: client, grant: GrantRefreshToken, scope: scope, sessionID: sessionID, refresh: true}
		if dbid != nil {
			u, err := s.activeUser(ctx, *dbid)
			if err != nil {
				return tokenResponse{}, err
			}
			req.user = &u
		}
		if rotated != nil {
			if grace := s.cfg.RefreshReuseGrace; grace > 0 && now.Sub(*rotated) <= grace {
				s.log.Info("refresh token reused within the grace period; new tokens issued", "client", client.ID, "session", sessionID)
				return s.issue(ctx, req)
			}
			if err := s.revokeSession(ctx, sessionID.String()); err != nil {
				return tokenResponse{}, err
			}
			s.log.Warn("refresh token reused; session revoked", "client", client.ID, "session", sessionID)
			return tokenResponse{}, errInvalidGrant("refresh token is invalid, revoked or already used")
		}
		tag, err := s.pool.Exec(ctx, `UPDATE gauth.tokens SET rotated_at = $2
WHERE refresh_hash = $1 AND kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL`, h, now)
		if err != nil {
			return tokenResponse{}, fmt.Errorf("rotate refresh token: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return s.issue(ctx, req)
		}
	}
	return tokenResponse{}, errInvalidGrant("refresh token is invalid, revoked or already used")
}

func (s *Server) grantJWTBearer(ctx context.Context, client tenant.Client, form url.Values) (tokenResponse, error) {
	assertion := form.Get("assertion")
	if assertion == "" {
		return tokenResponse{}, errInvalidRequest("missing assertion")
	}
	u, err := s.assertedUser(ctx, assertion, client.CCID, true)
	if err != nil {
		return tokenResponse{}, err
	}
	resp, err := s.issue(ctx, issueReq{client: client, user: &u, grant: GrantJWTBearer, scope: form.Get("scope")})
	if err == nil {
		resp.User = &tokenUser{CMEUserName: u.UserName}
	}
	return resp, err
}

func (s *Server) grantTokenExchange(ctx context.Context, client tenant.Client, form url.Values) (tokenResponse, error) {
	subject, typ := form.Get("subject_token"), form.Get("subject_token_type")
	if subject == "" || typ == "" {
		return tokenResponse{}, errInvalidRequest("subject_token and subject_token_type are required")
	}
	if typ != TokenTypeAccessToken && typ != TokenTypeJWT {
		return tokenResponse{}, errInvalidRequest("unsupported subject_token_type %s", typ)
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken && rt != TokenTypeJWT {
		return tokenResponse{}, errInvalidRequest("unsupported requested_token_type %s", rt)
	}
	// An access_token subject must be one of ours; a jwt subject may also come
	// from a trusted issuer.
	u, err := s.assertedUser(ctx, subject, client.CCID, typ == TokenTypeJWT)
	if err != nil {
		return tokenResponse{}, err
	}
	resp, err := s.issue(ctx, issueReq{client: client, user: &u, grant: GrantTokenExchange, scope: form.Get("scope")})
	resp.IssuedTokenType = TokenTypeAccessToken
	return resp, err
}

// assertedUser returns the person a JWT vouches for. Own tokens: an unrevoked
// access token, or (when external is set) an unexpired X-GWS-User JWT. Outside
// tokens (external set): signed by a TrustedIssuer with aud naming us.
func (s *Server) assertedUser(ctx context.Context, raw string, bound tenant.CCID, external bool) (tenant.User, error) {
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil {
		return tenant.User{}, errInvalidGrant("assertion is not a JWT")
	}
	var user tenant.User
	if unverified.Issuer == s.Issuer() {
		c, err := s.parseOwn(raw)
		if err != nil {
			return tenant.User{}, errInvalidGrant("assertion rejected: %v", err)
		}
		switch {
		case c.TokenUse == useAccess:
			if _, err := s.validateAccess(ctx, raw); err != nil {
				return tenant.User{}, assertionRejected(err)
			}
		case c.TokenUse == useUserinfo && external:
			// An X-GWS-User JWT lives only as long as the access token it was
			// made from: a sign-out (or any revocation) of that token, or the
			// deletion of its user or client, ends it too.
			src, found := strings.CutSuffix(c.ID, userinfoJTISuffix)
			if !found {
				return tenant.User{}, errInvalidGrant("assertion rejected: no source token")
			}
			if err := s.checkNotRevoked(ctx, src); err != nil {
				return tenant.User{}, assertionRejected(err)
			}
			if err := s.checkSubject(ctx, c); err != nil {
				return tenant.User{}, assertionRejected(err)
			}
		default:
			return tenant.User{}, errInvalidGrant("assertion is not an access token")
		}
		if !c.isUser() {
			return tenant.User{}, errInvalidGrant("assertion does not name a user")
		}
		if user, err = s.activeUser(ctx, c.DBID); err != nil {
			return tenant.User{}, err
		}
	} else {
		if !external {
			return tenant.User{}, errInvalidGrant("subject token was not issued by this server")
		}
		ti, ok := s.trusted(unverified.Issuer)
		if !ok {
			return tenant.User{}, errInvalidGrant("assertion issuer %q is not trusted", unverified.Issuer)
		}
		var rc jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &rc, func(*jwt.Token) (any, error) { return ti.Key, nil },
			jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA", "PS256"}),
			jwt.WithIssuer(ti.Issuer), jwt.WithTimeFunc(s.clk.Now), jwt.WithExpirationRequired())
		if err != nil {
			return tenant.User{}, errInvalidGrant("assertion rejected: %v", err)
		}
		if !audienceNamesUs(rc.Audience, s.Issuer()) {
			return tenant.User{}, errInvalidGrant("assertion audience must name %s", s.Issuer())
		}
		if user, err = s.findUser(ctx, rc.Subject, ""); err != nil {
			if errors.Is(err, tenant.ErrNotFound) {
				return tenant.User{}, errInvalidGrant("assertion subject %q is not a known user", rc.Subject)
			}
			return tenant.User{}, err
		}
		if !user.Enabled {
			return tenant.User{}, errInvalidGrant("user is disabled")
		}
	}
	if bound != "" && user.CCID != bound {
		return tenant.User{}, errInvalidGrant("user belongs to another contact center than the client")
	}
	return user, nil
}

// assertionRejected maps a token check failure to invalid_grant; other
// errors (the database) stay internal.
func assertionRejected(err error) error {
	if errors.Is(err, errTokenInvalid) {
		return errInvalidGrant("assertion rejected: %v", err)
	}
	return err
}

func audienceNamesUs(aud jwt.ClaimStrings, issuer string) bool {
	for _, a := range aud {
		if a == issuer || a == issuer+"/oauth/token" {
			return true
		}
	}
	return false
}

func (s *Server) trusted(iss string) (TrustedIssuer, bool) {
	for _, t := range s.cfg.TrustedIssuers {
		if t.Issuer == iss && iss != "" {
			return t, true
		}
	}
	return TrustedIssuer{}, false
}
