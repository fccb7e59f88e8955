package gauth

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// bearer extracts the RFC 6750 Bearer token.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authenticated validates the request's access token or writes a 401.
func (s *Server) authenticated(c echo.Context) (*claims, error, bool) {
	raw := bearer(c.Request())
	if raw == "" {
		return nil, bearerError(c, http.StatusUnauthorized, "invalid_token", "missing Bearer token"), false
	}
	cl, err := s.validateAccess(c.Request().Context(), raw)
	if err != nil {
		if errors.Is(err, errTokenInvalid) {
			return nil, bearerError(c, http.StatusUnauthorized, "invalid_token", err.Error()), false
		}
		return nil, err, false
	}
	return cl, nil, true
}

// CloudUserDetails is GAuth's /auth/v3/userinfo answer.
type CloudUserDetails struct {
	Authorities     []string `json:"authorities"`
	CMEUserName     string   `json:"cmeUserName,omitempty"`
	ContactCenterID string   `json:"contactCenterId,omitempty"`
	DBID            int64    `json:"dbid,omitempty"`
	EnvironmentID   string   `json:"environmentId,omitempty"`
	LoginName       string   `json:"loginName,omitempty"`
	Username        string   `json:"username"`
	ClientID        string   `json:"clientId"`
}

// userinfo answers CloudUserDetails. For a client token (no person) it
// describes the client: username = client id, no dbid or cmeUserName.
func (s *Server) userinfo(c echo.Context) error {
	cl, err, good := s.authenticated(c)
	if !good {
		return err
	}
	return c.JSON(http.StatusOK, CloudUserDetails{Authorities: cl.Authorities, CMEUserName: cl.UserName,
		ContactCenterID: cl.ContactCenterID, DBID: cl.DBID, EnvironmentID: cl.EnvironmentID,
		LoginName: cl.UserName, Username: cl.Subject, ClientID: cl.ClientID})
}

// OpenIDUserInfo is GAuth's /auth/v3/openid/userinfo answer.
type OpenIDUserInfo struct {
	Aud             string   `json:"aud"`
	Authorities     []string `json:"authorities"`
	ContactCenterID string   `json:"contact_center_id,omitempty"`
	DBID            int64    `json:"dbid,omitempty"`
	Email           string   `json:"email,omitempty"`
	EnvironmentID   string   `json:"environment_id,omitempty"`
	FamilyName      string   `json:"family_name,omitempty"`
	GivenName       string   `json:"given_name,omitempty"`
	Sub             string   `json:"sub"`
	UserName        string   `json:"user_name,omitempty"`
}

func (s *Server) openidInfo(c echo.Context, cl *claims) (OpenIDUserInfo, error) {
	info := OpenIDUserInfo{Aud: cl.ClientID, Authorities: cl.Authorities, ContactCenterID: cl.ContactCenterID, DBID: cl.DBID,
		EnvironmentID: cl.EnvironmentID, Sub: cl.Subject, UserName: cl.UserName}
	if cl.isUser() {
		u, err := s.tenants.UserByDBID(c.Request().Context(), tenant.DBID(cl.DBID))
		if err != nil && !errors.Is(err, tenant.ErrNotFound) {
			return info, err
		}
		info.Email, info.FamilyName, info.GivenName = u.Email, u.LastName, u.FirstName
	}
	return info, nil
}

func (s *Server) openidUserinfo(c echo.Context) error {
	cl, err, good := s.authenticated(c)
	if !good {
		return err
	}
	info, err := s.openidInfo(c, cl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

// jwtUserinfo answers the user details as a signed JWT in header X-GWS-User
// (and the OpenIdUserInfo JSON in the body). That JWT is accepted as a
// jwt-bearer assertion for UserinfoJWTTTL.
func (s *Server) jwtUserinfo(c echo.Context) error {
	cl, err, good := s.authenticated(c)
	if !good {
		return err
	}
	signed, info, err := s.userinfoJWT(c, cl)
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-GWS-User", signed)
	return c.JSON(http.StatusOK, info)
}

// userinfoJWT is the caller's user info as a signed JWT (X-GWS-User, the
// result of convert-token), revoked with the access token it came from.
func (s *Server) userinfoJWT(c echo.Context, cl *claims) (string, OpenIDUserInfo, error) {
	info, err := s.openidInfo(c, cl)
	if err != nil {
		return "", info, err
	}
	now := s.clk.Now()
	uc := *cl
	uc.TokenUse = useUserinfo
	uc.RegisteredClaims = jwt.RegisteredClaims{Issuer: cl.Issuer, Subject: cl.Subject, Audience: cl.Audience,
		IssuedAt: jwt.NewNumericDate(issuedAt(now)), NotBefore: jwt.NewNumericDate(issuedAt(now)), ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.UserinfoJWTTTL)),
		ID: cl.ID + userinfoJTISuffix}
	uc.GivenName, uc.FamilyName, uc.Email = info.GivenName, info.FamilyName, info.Email
	signed, err := s.sign(&uc)
	return signed, info, err
}

// convertToken is GET /auth/v3/oauth/convert-token: the caller's access
// token as the JWT the Extension Code Grant takes (JwtConvertResult), the
// same one /jwt-userinfo hands out in X-GWS-User.
func (s *Server) convertToken(c echo.Context) error {
	cl, err, good := s.authenticated(c)
	if !good {
		return err
	}
	signed, _, err := s.userinfoJWT(c, cl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"jwtToken": signed})
}

// changePassword is POST /auth/v3/change-password
// ({data:{userName, oldPassword, newPassword}, operationId}) for the user
// whose Bearer token it carries. The demo reset (ops) restores the demo
// users' passwords.
func (s *Server) changePassword(c echo.Context) error {
	cl, err, good := s.authenticated(c)
	if !good {
		return err
	}
	if !cl.isUser() {
		return envelope(c, http.StatusForbidden, "change-password takes a user's token, not a client's", nil)
	}
	var in struct {
		UserName    string `json:"userName"`
		OldPassword string `json:"oldPassword"`
		NewPassword string `json:"newPassword"`
	}
	if ok, err := decodeJSON(c, &in); !ok {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.tenants.UserByDBID(ctx, tenant.DBID(cl.DBID))
	if err != nil {
		return s.storeError(c, "change-password", err)
	}
	_, name, _ := strings.Cut(in.UserName, `\`) // tenant\user names the user too
	if name == "" {
		name = in.UserName
	}
	switch {
	case in.OldPassword == "" || in.NewPassword == "":
		return envelope(c, http.StatusBadRequest, "data.oldPassword and data.newPassword are required", nil)
	case name != "" && !strings.EqualFold(name, u.UserName):
		return envelope(c, http.StatusForbidden, "data.userName is not the token's user", nil)
	case !tenant.CheckSecret(u.PasswordHash, in.OldPassword):
		return envelope(c, http.StatusBadRequest, "data.oldPassword is not the user's password", nil)
	}
	if _, err := s.tenants.PutUser(ctx, u, in.NewPassword); err != nil {
		return s.storeError(c, "change-password", err)
	}
	return ok(c, nil)
}

// signOut revokes the caller's session (access and refresh tokens of that
// sign-in, the login cookie, and with them the codes and X-GWS-User JWTs made
// from them); global=true revokes every token and session of the user. A
// browser with only the login cookie is signed out too. GET with redirectUri
// redirects there when it is a path on this server; a bad one is refused
// before anything is revoked.
func (s *Server) signOut(c echo.Context) error {
	ctx := c.Request().Context()
	global, _ := strconv.ParseBool(c.QueryParam("global"))
	to := ""
	if c.Request().Method == http.MethodGet {
		to = c.QueryParam("redirectUri")
	}
	if to != "" && !safeLocalRedirect(to) {
		return envelope(c, http.StatusBadRequest, badRedirectURI, nil)
	}
	if raw := bearer(c.Request()); raw != "" {
		cl, err, good := s.authenticated(c)
		if !good {
			return err
		}
		if global && cl.isUser() {
			err = s.revokeUser(ctx, cl.DBID)
		} else {
			err = s.revokeSession(ctx, cl.SessionID)
		}
		if err != nil {
			return err
		}
	} else if u, sid, found := s.currentSession(ctx, c.Request()); found {
		var err error
		if global {
			err = s.revokeUser(ctx, int64(u.DBID))
		} else {
			err = s.revokeSession(ctx, sid.String())
		}
		if err != nil {
			return err
		}
	} else {
		return bearerError(c, http.StatusUnauthorized, "invalid_token", "missing Bearer token or session")
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/auth/v3", MaxAge: -1, HttpOnly: true})
	if to != "" {
		return c.Redirect(http.StatusFound, to)
	}
	return ok(c, nil)
}

// ping answers 200 to an authenticated caller, else 403 (as GAuth does).
func (s *Server) ping(c echo.Context) error {
	raw := bearer(c.Request())
	if raw == "" {
		return envelope(c, http.StatusForbidden, "not authenticated", nil)
	}
	if _, err := s.validateAccess(c.Request().Context(), raw); err != nil {
		if errors.Is(err, errTokenInvalid) {
			return envelope(c, http.StatusForbidden, "not authenticated", nil)
		}
		return err
	}
	return ok(c, nil)
}

// authScheme answers the sign-in scheme of a user or tenant: always "basic"
// here (no SAML IdPs), 404 for an unknown tenant.
func (s *Server) authScheme(c echo.Context) error {
	var req struct {
		UserName string `json:"userName"`
		Tenant   string `json:"tenant"`
	}
	if done, err := decodeJSON(c, &req); !done {
		return err
	}
	tn := req.Tenant
	if t, _, found := strings.Cut(req.UserName, `\`); found {
		tn = t
	}
	if tn != "" {
		if _, err := s.tenants.ContactCenterByName(c.Request().Context(), tn); err != nil {
			return s.storeError(c, "auth scheme", err)
		}
	}
	return ok(c, map[string]string{"scheme": "basic"})
}

// discovery is the OIDC discovery document: an addition to the real GAuth so
// standard libraries (go-oidc) can verify our JWTs.
func (s *Server) discovery(c echo.Context) error {
	iss := s.Issuer()
	return c.JSON(http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/oauth/authorize",
		"token_endpoint":                        iss + "/oauth/token",
		"userinfo_endpoint":                     iss + "/openid/userinfo",
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"end_session_endpoint":                  iss + "/sign-out",
		"response_types_supported":              []string{"code", "token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"grant_types_supported": []string{GrantAuthorizationCode, GrantImplicit, GrantPassword, GrantClientCredentials,
			GrantRefreshToken, GrantJWTBearer, GrantTokenExchange},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"scopes_supported":                      []string{"*", "openid"},
		"claims_supported": []string{"sub", "client_id", "contact_center_id", "user_name", "dbid", "authorities",
			"environment_id", "given_name", "family_name", "email"},
	})
}

// jwks publishes the signing keys (an addition to the real GAuth).
func (s *Server) jwks(c echo.Context) error {
	ks := s.keySet()
	if ks == nil {
		return envelope(c, http.StatusServiceUnavailable, "signing key not loaded", nil)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSON(http.StatusOK, ks.jwks)
}
